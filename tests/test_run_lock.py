"""One run at a time per store, and no false rejections when runs overlap.

Two runs of the same stage start together (two threads, each with its own context and
engine, as two processes would have) on a real SQLite file and the real PostgreSQL: the
second waits for the first and then finds nothing to do, or, with a tiny
``run_lock_timeout``, stops with an error naming the first run and the setting, having
written nothing. The first run is held inside its stage by its own progress reporter
(the ``Progress`` a caller passes to a run), so the overlap is certain; threads meet on
``threading.Event``s, nothing sleeps.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from pipeline import daily, store
from pipeline.config import Settings
from pipeline.feeds.ingest import (
    FeedJob,
    FeedOutcome,
    _Seen,
    drop_known,
    read_feed,
    store_outcome,
    sync_registry,
)
from pipeline.registry import FeedSpec, load_registry, save_registry
from pipeline.tables import Article, Feed, RejectedEntry, Run
from tests.test_feeds import item, rss

DAY = dt.date(2024, 8, 10)
NOW = dt.datetime(2024, 8, 10, 12, 0, tzinfo=dt.UTC)
WAIT = 120  # seconds: an upper bound on any one step, never reached when all is well
REPO = Path(__file__).resolve().parents[1]


class HeldProgress:
    """A run's progress reporter that holds the run inside stage ``hold`` until released."""

    def __init__(self, hold: str) -> None:
        self.hold = hold
        self.inside = threading.Event()
        self.release = threading.Event()

    def start(self, description: str, total: int | None) -> None:
        if description == self.hold:
            self.inside.set()
            assert self.release.wait(WAIT), "the test never released the first run"

    def advance(self, amount: int = 1) -> None:
        pass


class WatchedProgress:
    """A run's progress reporter that tells the test when the run starts waiting."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.descriptions: list[str] = []

    def start(self, description: str, total: int | None) -> None:
        self.descriptions.append(description)
        if description.startswith("waiting for the store"):
            self.waiting.set()

    def advance(self, amount: int = 1) -> None:
        pass


class Runner(threading.Thread):
    """``fn()`` in a thread, keeping its result or its error."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> Any:
        self.join(WAIT)
        assert not self.is_alive(), "a run did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def wait_for(event: threading.Event, runner: Runner, what: str) -> None:
    """Wait for ``event`` (at most WAIT s); fail with the runner's error if it ends first."""
    for _ in range(WAIT * 20):
        if event.wait(0.05):
            return
        if not runner.is_alive() and not event.is_set():
            runner.outcome()  # raises the runner's error, if any
            pytest.fail(f"the run ended before {what}")
    pytest.fail(f"timed out waiting until {what}")


def counts_without_runs(engine: Any) -> dict[str, int]:
    return {k: v for k, v in store.table_counts(engine).items() if k != "runs"}


def one_run_counts(tmp_path: Path, settings: Settings, stages: list[str]) -> dict[str, int]:
    """Row counts after ``stages`` run once on a fresh SQLite store (the reference)."""
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    store.upgrade(url)
    ctx = daily.make_context(DAY, settings.model_copy(update={"database_url": url}))
    for name in stages:
        daily.run_stage(ctx, name)
    counts = counts_without_runs(ctx.engine)
    ctx.engine.dispose()
    return counts


def overlapping(
    settings: Settings, stage: str, hold: str, second: Settings | None = None
) -> tuple[daily.RunContext, Runner, daily.RunContext, Runner, HeldProgress, WatchedProgress]:
    """Start run A of ``stage`` and hold it inside; then start run B of the same stage."""
    held, watched = HeldProgress(hold), WatchedProgress()
    ctx_a = daily.make_context(DAY, settings, held)
    ctx_b = daily.make_context(DAY, second or settings, watched)
    run_a = Runner(lambda: daily.run_stage(ctx_a, stage))
    run_a.start()
    wait_for(held.inside, run_a, f"it reached {hold!r}")
    run_b = Runner(lambda: daily.run_stage(ctx_b, stage))
    run_b.start()
    return ctx_a, run_a, ctx_b, run_b, held, watched


# --- the run lock ------------------------------------------------------------------------


def test_second_run_waits_then_finds_nothing_to_split(settings, tmp_path) -> None:
    first = daily.make_context(DAY, settings)
    daily.run_stage(first, "ingest_seeds")
    ctx_a, run_a, ctx_b, run_b, held, watched = overlapping(settings, "split", hold="split")
    wait_for(watched.waiting, run_b, "it waited for the first run")
    assert ctx_a.run_id in watched.descriptions[0]  # it names the run it waits for
    held.release.set()
    done_a, done_b = run_a.outcome(), run_b.outcome()

    assert done_a.counts["articles_split"] == 1
    assert done_b.counts == {"articles_split": 0, "sentences_new": 0}
    assert counts_without_runs(ctx_a.engine) == one_run_counts(
        tmp_path, settings, ["ingest_seeds", "split"]
    )
    with store.session_scope(ctx_a.engine) as session:
        runs = session.execute(select(Run.run_id, Run.stage, Run.status)).all()
    assert sorted(runs) == sorted(
        [
            (first.run_id, "ingest_seeds", "ok"),
            (ctx_a.run_id, "split", "ok"),
            (ctx_b.run_id, "split", "ok"),
        ]
    )
    for ctx in (first, ctx_a, ctx_b):
        ctx.engine.dispose()


@pytest.mark.parametrize("timeout", [0.0, 0.05])
def test_second_run_stops_with_a_clear_error_and_writes_nothing(
    settings, tmp_path, timeout: float
) -> None:
    first = daily.make_context(DAY, settings)
    daily.run_stage(first, "ingest_seeds")
    impatient = settings.model_copy(update={"run_lock_timeout": timeout})
    ctx_a, run_a, ctx_b, run_b, held, watched = overlapping(
        settings, "split", hold="split", second=impatient
    )
    with pytest.raises(store.RunLockTimeout) as caught:
        run_b.outcome()
    message = str(caught.value)
    assert "ESCMON_RUN_LOCK_TIMEOUT" in message
    assert f"escmon run {ctx_a.run_id}" in message  # the run that holds the store
    assert "\n" not in message
    assert watched.waiting.is_set()
    held.release.set()
    assert run_a.outcome().counts["articles_split"] == 1

    assert counts_without_runs(ctx_a.engine) == one_run_counts(
        tmp_path, settings, ["ingest_seeds", "split"]
    )
    with store.session_scope(ctx_a.engine) as session:
        run_ids = set(session.execute(select(Run.run_id)).scalars())
    assert ctx_b.run_id not in run_ids  # the stopped run recorded nothing
    for ctx in (first, ctx_a, ctx_b):
        ctx.engine.dispose()


def test_lock_is_released_after_a_failed_stage_and_held_once_across_stages(
    settings, tmp_path
) -> None:
    bad = settings.model_copy(update={"seeds_dir": tmp_path / "missing", "run_lock_timeout": 0})
    ctx = daily.make_context(DAY, bad)
    with pytest.raises(daily.StageError):
        daily.run_stage(ctx, "ingest_seeds")
    ctx.engine.dispose()
    # Timeout 0: a lock left behind by the failed stage, or a stage taking the lock its
    # own run holds, would stop this run at once.
    ctx = daily.make_context(DAY, settings.model_copy(update={"run_lock_timeout": 0}))
    with daily.run_lock(ctx):  # as run_daily does
        assert ctx.lock is not None
        results = [daily.run_stage(ctx, name) for name in ("ingest_seeds", "split")]
    assert [r.status for r in results] == ["ok", "ok"]
    assert ctx.lock is None
    other = daily.make_context(DAY, settings.model_copy(update={"run_lock_timeout": 0}))
    assert daily.run_stage(other, "split").counts["articles_split"] == 0  # released
    for each in (ctx, other):
        each.engine.dispose()


def test_cli_prints_one_error_line_naming_the_holder_and_the_setting(
    settings, db_url, tmp_path
) -> None:
    engine = store.make_engine(db_url)
    env = {
        **os.environ,
        "ESCMON_DATABASE_URL": db_url,
        "ESCMON_RUN_LOCK_TIMEOUT": "0",
        "ESCMON_CONFIG": str(tmp_path / "none.toml"),
        "ESCMON_SEEDS_DIR": str(REPO / "seeds"),
        "ESCMON_FEEDS_FILE": str(tmp_path / "feeds.toml"),
        "ESCMON_OFFLINE": "1",
    }
    with store.run_lock(engine, owner="a test holding the store", timeout=0):
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", "--stage", "split"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert "a test holding the store" in errors[0]
    assert "ESCMON_RUN_LOCK_TIMEOUT" in errors[0]
    assert store.table_counts(engine)["runs"] == 0
    engine.dispose()


def test_lock_file_sits_beside_the_sqlite_file(tmp_path) -> None:
    assert store.run_lock_path("sqlite:///var/escmon.db") == Path("var/escmon.db.lock")
    assert store.run_lock_path(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db.lock"
    assert store.run_lock_path("sqlite://") is None
    assert store.run_lock_path("sqlite:///:memory:") is None
    assert store.run_lock_path("postgresql+psycopg://u@h/db") is None
    engine = store.make_engine("sqlite://")
    # An in-memory database is private to its process: no lock, so no wait.
    with (
        store.run_lock(engine, owner="one", timeout=0),
        store.run_lock(engine, owner="two", timeout=0),
    ):
        pass
    engine.dispose()


# --- overlapping ingest: no false rejections -------------------------------------------


ENTRIES = 30


def feed_body(prefix: str = "g", link: str = "/news/{i}") -> bytes:
    return rss(
        *(
            item(
                f"{prefix}{i}",
                f"Border report number {i}",
                f"Troops moved along the border on Saturday, report {i} said in full.",
                link=link.format(i=i),
            )
            for i in range(ENTRIES)
        )
    )


def rejected_count(engine: Any) -> int:
    with store.session_scope(engine) as session:
        return session.execute(select(func.count()).select_from(RejectedEntry)).scalar_one()


def test_overlapping_feed_ingest_stores_once_and_rejects_nothing(settings, tmp_path, site) -> None:
    site.feed("/feed.xml", feed_body())
    live = settings.model_copy(update={"offline": False, "http_retries": 0})
    save_registry(live.feeds_file, [FeedSpec("local", site.url("/feed.xml"), fulltext="never")])
    ctx_a, run_a, ctx_b, run_b, held, watched = overlapping(live, "ingest_feeds", hold="feeds")
    wait_for(watched.waiting, run_b, "it waited for the first run")
    held.release.set()
    done_a, done_b = run_a.outcome(), run_b.outcome()

    assert done_a.counts["articles_new"] == ENTRIES
    assert done_b.counts["articles_new"] == 0
    assert done_b.counts["rejected"] == 0
    assert done_b.counts["feeds_not_modified"] == 1  # it asked with the first run's ETag
    counts = store.table_counts(ctx_a.engine)
    assert counts["articles"] == ENTRIES
    assert counts["rejected_entries"] == 0
    for ctx in (ctx_a, ctx_b):
        ctx.engine.dispose()


def outcome_for(engine: Any, name: str, body: bytes) -> FeedOutcome:
    """A fetched feed as the ingest stage holds it before storing (the body given)."""
    with store.session_scope(engine) as session:
        feed = session.execute(select(Feed).where(Feed.name == name)).scalar_one()
        job = FeedJob(id=feed.id, name=name, url=feed.url, fulltext="never")
    _parsed, entries, rejections = read_feed(
        body, url=job.url, headers={}, name=name, language=None, fetched_at=NOW
    )
    return FeedOutcome(job, "ok", entries=entries, rejections=rejections)


def test_entries_stored_by_a_concurrent_run_are_known_never_rejected(engine, tmp_path) -> None:
    """The interleaving that rejected every stored article: run B checks what is known,
    run A stores the same entries, then B stores. B must find them known."""
    feeds_file = tmp_path / "feeds.toml"
    save_registry(
        feeds_file,
        [
            FeedSpec("one", "http://127.0.0.1:9/one.xml", fulltext="never"),
            FeedSpec("two", "http://127.0.0.1:9/two.xml", fulltext="never"),
        ],
    )
    with store.session_scope(engine) as session:
        sync_registry(session, load_registry(feeds_file))
    run_a = outcome_for(engine, "one", feed_body())
    run_b = outcome_for(engine, "one", feed_body())
    assert len(run_b.entries) == ENTRIES

    with store.session_scope(engine) as session:
        assert drop_known(session, run_b) == 0  # B: nothing stored yet
    with store.session_scope(engine) as session:
        assert drop_known(session, run_a) == 0
    stored_a = store_outcome(engine, run_a, _Seen(), NOW)  # A stores and commits
    stored_b = store_outcome(engine, run_b, _Seen(), NOW)  # then B stores

    assert stored_a["articles_new"] == ENTRIES
    assert stored_b["articles_new"] == 0
    assert stored_b["rejected"] == 0
    assert stored_b["entries_known"] == ENTRIES
    assert rejected_count(engine) == 0
    with store.session_scope(engine) as session:
        assert session.execute(select(func.count()).select_from(Article)).scalar_one() == ENTRIES

    # A real duplicate still is one: another feed's entries with the same links.
    other = outcome_for(engine, "two", feed_body(prefix="t"))
    with store.session_scope(engine) as session:
        drop_known(session, other)
    stored = store_outcome(engine, other, _Seen(), NOW)
    assert stored == {"articles_new": 0, "rejected": ENTRIES, "entries_known": 0}
    with store.session_scope(engine) as session:
        reasons = session.execute(select(RejectedEntry.reason)).scalars().all()
    assert len(reasons) == ENTRIES
    assert all(reason.startswith("duplicate URL of article") for reason in reasons)
