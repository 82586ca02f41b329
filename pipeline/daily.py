"""The daily job: one ordered list of stages, shared by ``escmon run`` and the DAG.

A stage is a function ``(ctx: RunContext) -> dict[str, int]`` that reads and
writes the store and returns what it did (counts). :func:`run_stage` records
each call in the ``runs`` table; :func:`run_daily` runs them all in order.

One run at a time works on a store: :func:`run_stage` holds the store's run lock
(:func:`pipeline.store.run_lock`) for its stage, :func:`run_daily` (or any caller using
:func:`run_lock`) for all of them. A second run waits up to ``ESCMON_RUN_LOCK_TIMEOUT``
seconds, then stops with an error naming the run that holds the store.

A context covers an interval of days (``first_day`` to ``day``). The daily run covers one
day and processes whatever is new; a *rebuild* (``escmon run --from/--to``, the
``reprocess`` Dag, an Airflow run for a day that has ended before today) fetches
nothing, works only on the articles published in its days and recomputes their signals.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine

from pipeline.config import Settings
from pipeline.errors import EscmonError
from pipeline.stages import STAGE_NAMES
from pipeline.store import (
    RunLock,
    check_schema,
    first_line,
    insert_ignore,
    make_engine,
    session_scope,
)
from pipeline.store import run_lock as store_run_lock
from pipeline.tables import Run


class Progress(Protocol):
    """What a stage may report while it works (rich progress in the CLI)."""

    def start(self, description: str, total: int | None) -> None: ...
    def advance(self, amount: int = 1) -> None: ...


class NullProgress:
    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass


log = logging.getLogger(__name__)


def new_run_id() -> str:
    """A run id for a run started outside Airflow (under Airflow: the Dag run's id)."""
    return uuid.uuid4().hex[:16]


@dataclass
class RunContext:
    """What one run works on: the store, its days and how.

    ``day`` is the run's (last) day, ``first_day`` the first day of its interval (the
    same day for a daily run). ``rebuild`` makes every stage work on exactly those
    days: no fetching, only the articles published in them, signals recomputed (see
    the module docstring). ``fetch=False`` only skips fetching (recorded in the stage's
    counts as ``fetch_skipped``). ``rescore`` scores the interval's sentences with the
    current model also where an older model scored them. ``mail_old_alerts`` lifts the
    mail guard (:func:`suppress_late_alerts`).
    """

    settings: Settings
    engine: Engine
    day: dt.date
    run_id: str = field(default_factory=new_run_id)
    progress: Progress = field(default_factory=NullProgress)
    extra: dict[str, Any] = field(default_factory=dict)
    lock: RunLock | None = field(default=None, init=False, repr=False, compare=False)
    first_day: dt.date | None = None
    rebuild: bool = False
    fetch: bool = True
    rescore: bool = False
    mail_old_alerts: bool = False

    @property
    def days(self) -> list[dt.date]:
        """Every day of the interval, in order."""
        first = self.first_day or self.day
        return [first + dt.timedelta(days=n) for n in range((self.day - first).days + 1)]


Stage = Callable[[RunContext], dict[str, int]]


def make_context(
    day: dt.date,
    settings: Settings | None = None,
    progress: Progress | None = None,
    *,
    first_day: dt.date | None = None,
    run_id: str | None = None,
    **options: Any,
) -> RunContext:
    """A context for ``day`` (or the days ``first_day`` to ``day``) on the configured store
    (the CLI and the DAG both use this). ``options``: the flags of :class:`RunContext`."""
    if settings is None:
        from pipeline.config import get_settings

        settings = get_settings()
    if first_day is not None and first_day > day:
        raise ValueError(f"the first day {first_day} is after the last day {day}")
    return RunContext(
        settings=settings,
        engine=make_engine(settings.database_url),
        day=day,
        progress=progress or NullProgress(),
        first_day=first_day,
        run_id=run_id or new_run_id(),
        **options,
    )


def _owner(ctx: RunContext, doing: str) -> str:
    """Who holds the lock, as waiting runs see it (PostgreSQL shows the first 63 bytes)."""
    return (
        f"escmon run {ctx.run_id} ({ctx.day.isoformat()}) {doing}, "
        f"pid {os.getpid()} on {socket.gethostname()}"
    )


@contextmanager
def run_lock(ctx: RunContext, doing: str = "all stages") -> Iterator[None]:
    """Hold the store's run lock for the block (a no-op when ``ctx`` holds it already).

    A second run of the same store waits here, up to ``settings.run_lock_timeout`` seconds
    (``ESCMON_RUN_LOCK_TIMEOUT``), then raises :class:`pipeline.store.RunLockTimeout`
    before writing anything. While it waits, ``ctx.progress`` shows whom it waits for.
    """
    if ctx.lock is not None:
        ctx.lock.describe(_owner(ctx, doing))
        yield
        return

    def waiting(holder: str) -> None:
        ctx.progress.start(f"waiting for the store, in use by {holder}", None)

    with store_run_lock(
        ctx.engine,
        owner=_owner(ctx, doing),
        timeout=ctx.settings.run_lock_timeout,
        on_wait=waiting,
    ) as lock:
        ctx.lock = lock
        try:
            yield
        finally:
            ctx.lock = None


class StageIncomplete(EscmonError):
    """A stage did its work but could not do all of it (feeds unread, alerts unsent).

    Raised after the work is stored, so the run (and Airflow) show it failed; ``counts``
    are still recorded in ``runs``.
    """

    def __init__(self, message: str, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.counts = counts


class StageError(EscmonError, RuntimeError):
    """A stage failed; the message names the stage and the cause."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        self.cause = cause
        super().__init__(f"stage {stage!r} failed: {first_line(cause)}")


def _ingest_seeds(ctx: RunContext) -> dict[str, int]:
    from pipeline.seeds import ingest_seeds

    return ingest_seeds(ctx.engine, ctx.settings.seeds_dir)


def _ingest_feeds(ctx: RunContext) -> dict[str, int]:
    if ctx.rebuild or not ctx.fetch:
        # The feeds hold today's entries, not the interval's: a backfill fetches nothing.
        log.info(
            "ingest_feeds: fetching skipped for %s to %s (%s): feeds are read only by the "
            "run for the latest day",
            ctx.days[0],
            ctx.day,
            "a rebuild" if ctx.rebuild else "fetching turned off",
        )
        return {"fetch_skipped": 1}
    from pipeline.feeds import ingest_feeds

    problems: list[str] = []
    counts = ingest_feeds(
        ctx.engine, ctx.settings, day=ctx.day, progress=ctx.progress, problems=problems
    )
    # Failing: the feeds that failed now and those backing off after failing before (so a
    # retry, which finds them backing off, fails too). Deferred feeds were not tried.
    tried = counts.get("feeds_due", 0) - counts.get("feeds_deferred", 0)
    considered = tried + counts.get("feeds_waiting", 0)
    limit = ctx.settings.ingest_max_failed_share
    if problems and not ctx.settings.offline and len(problems) > limit * considered:
        raise StageIncomplete(
            f"{len(problems)} of {considered} feeds could not be read, more than "
            f"ESCMON_INGEST_MAX_FAILED_SHARE={limit:g} allows: " + "; ".join(problems),
            counts,
        )
    return counts


def _article_days(ctx: RunContext) -> dict[str, Any]:
    """The publication days a stage works on: the interval when rebuilding, else all."""
    return {"since": ctx.days[0], "until": ctx.day} if ctx.rebuild else {}


def _split(ctx: RunContext) -> dict[str, int]:
    from pipeline.parallel import worker_count
    from pipeline.sentences import split_new_articles

    workers = worker_count(ctx.settings.workers)
    return split_new_articles(
        ctx.engine, progress=ctx.progress, workers=workers, **_article_days(ctx)
    )


def _classify(ctx: RunContext) -> dict[str, int]:
    from pipeline.scoring import classify_sentences  # scikit-learn only if a sentence waits

    return classify_sentences(
        ctx.engine,
        ctx.settings,
        rescore=ctx.rescore,
        progress=ctx.progress,
        **_article_days(ctx),
    )


def _signals(ctx: RunContext) -> dict[str, int]:
    from pipeline.signals import compute_signals

    languages = ctx.settings.alert_languages or None  # ESCMON_ALERT_LANGUAGES
    if ctx.rebuild:  # exactly the interval, recomputed (late articles, regrouped stories)
        return compute_signals(ctx.engine, days=ctx.days, languages=languages)
    first = ctx.days[0] - dt.timedelta(days=SIGNAL_LOOKBACK_DAYS)
    days = [first + dt.timedelta(days=n) for n in range((ctx.day - first).days + 1)]
    return compute_signals(ctx.engine, days=days, only_changed=True, languages=languages)


def _detect(ctx: RunContext) -> dict[str, int]:
    from pipeline.alerts import detect_alerts

    total: dict[str, int] = {}
    for day in ctx.days:
        for key, value in detect_alerts(ctx.engine, ctx.settings, day=day).items():
            total[key] = total.get(key, 0) + value
    return total


def _report(ctx: RunContext) -> dict[str, int]:
    from pipeline.report import report_stage

    return report_stage(ctx.engine, ctx.settings, day=ctx.day)  # the run's (last) day


def _send_alerts(ctx: RunContext) -> dict[str, int]:
    from pipeline.alerts import send_pending_alerts, suppress_late_alerts, unsuppress

    suppressed = released = 0
    if not ctx.mail_old_alerts:
        suppressed = suppress_late_alerts(ctx.engine, ctx.settings.alert_max_age_days)
    elif ctx.rebuild:  # asked for: the rebuilt days' suppressed alerts are mailed after all
        released = unsuppress(ctx.engine, ctx.days[0], ctx.day)
    problems: list[str] = []
    counts = send_pending_alerts(
        ctx.engine, ctx.settings, smtp=ctx.extra.get("smtp"), problems=problems
    )
    counts["suppressed"], counts["unsuppressed"] = suppressed, released
    unsent = counts["failed"] + counts["deferred"]
    if unsent:
        raise StageIncomplete(
            f"{unsent} alert(s) could not be sent ({counts['failed']} failed, "
            f"{counts['deferred']} left for later, {counts['sent']} sent): "
            + "; ".join(problems[:5])
            + " (they stay pending unless given up: 'escmon alerts list --status pending')",
            counts,
        )
    return counts


# Articles often arrive a day or two after their publication date: recompute those days.
SIGNAL_LOOKBACK_DAYS = 2

STAGES: dict[str, Stage] = {
    "ingest_seeds": _ingest_seeds,
    "ingest_feeds": _ingest_feeds,
    "split": _split,
    "classify": _classify,
    "signals": _signals,
    "detect": _detect,
    "report": _report,
    "send_alerts": _send_alerts,
}
assert tuple(STAGES) == STAGE_NAMES, "pipeline/stages.py lists the stages of STAGES"


@dataclass
class StageResult:
    stage: str
    status: str
    counts: dict[str, int]
    duration_s: float
    error: str | None = None


def run_stage(ctx: RunContext, name: str) -> StageResult:
    """Run one stage under the run lock and record it in ``runs``; raise :class:`StageError`
    on failure (and :class:`pipeline.store.RunLockTimeout` when another run keeps the store)."""
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages are: {', '.join(STAGES)}")
    with run_lock(ctx, f"stage {name}"):
        return _run_stage(ctx, name)


def _run_stage(ctx: RunContext, name: str) -> StageResult:
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    error: BaseException | None = None
    counts: dict[str, int] = {}
    try:
        counts = STAGES[name](ctx)
    except StageIncomplete as exc:  # the work is stored: record what it did
        error, counts = exc, exc.counts
    except Exception as exc:
        error = exc
    result = StageResult(
        stage=name,
        status="failed" if error else "ok",
        counts=counts,
        duration_s=time.perf_counter() - clock,
        error=first_line(error) if error else None,
    )
    from pipeline.store import database_error, describe_database_error, is_database_error

    unrecorded: str | None = None
    try:
        _record(ctx, result, started)
    except Exception as exc:
        # The stage's own error comes first: failing to record it must not mask it.
        if error is None:
            if is_database_error(exc):
                raise database_error(ctx.engine.url, exc) from exc
            raise
        unrecorded = describe_database_error(ctx.engine.url, exc)
        error.add_note(f"the failure could not be recorded in the runs table: {unrecorded}")
    if error is not None:
        cause = database_error(ctx.engine.url, error) if is_database_error(error) else error
        failure = StageError(name, cause)
        if unrecorded is not None:  # one line still: the stage's error, then this
            reason = "" if unrecorded == str(cause) else f": {unrecorded}"
            failure.args = (f"{failure} (nor could it be recorded in the runs table{reason})",)
        raise failure from error
    return result


def _record(ctx: RunContext, result: StageResult, started: dt.datetime) -> None:
    row = {
        "run_id": ctx.run_id,
        "run_day": ctx.day,
        "stage": result.stage,
        "status": result.status,
        "counts": result.counts,
        "error": result.error,
        "started_at": started,
        "finished_at": dt.datetime.now(dt.UTC),
        "duration_s": result.duration_s,
    }
    with session_scope(ctx.engine) as session:
        insert_ignore(session, Run, [row], returning=None)


def run_daily(
    ctx: RunContext,
    *,
    on_stage: Callable[[StageResult], None] | None = None,
) -> list[StageResult]:
    """Run every stage in order for ``ctx.day``, holding the run lock throughout; stop at
    the first failure."""
    check_schema(ctx.engine)
    results = []
    with run_lock(ctx):
        for name in STAGES:
            result = run_stage(ctx, name)
            results.append(result)
            if on_stage is not None:
                on_stage(result)
    return results
