"""The daily job: one ordered list of stages, shared by ``escmon run`` and the DAG.

A stage is a function ``(ctx: RunContext) -> dict[str, int]`` that reads and
writes the store and returns what it did (counts). :func:`run_stage` records
each call in the ``runs`` table; :func:`run_daily` runs them all in order.

One run at a time works on a store: :func:`run_stage` holds the store's run lock
(:func:`pipeline.store.run_lock`) for its stage, :func:`run_daily` (or any caller using
:func:`run_lock`) for all of them. A second run waits up to ``ESCMON_RUN_LOCK_TIMEOUT``
seconds, then stops with an error naming the run that holds the store.
"""

from __future__ import annotations

import datetime as dt
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


@dataclass
class RunContext:
    settings: Settings
    engine: Engine
    day: dt.date
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    progress: Progress = field(default_factory=NullProgress)
    extra: dict[str, Any] = field(default_factory=dict)
    lock: RunLock | None = field(default=None, init=False, repr=False, compare=False)


Stage = Callable[[RunContext], dict[str, int]]


def make_context(
    day: dt.date, settings: Settings | None = None, progress: Progress | None = None
) -> RunContext:
    """A context for ``day`` on the configured store (the CLI and the DAG both use this)."""
    if settings is None:
        from pipeline.config import get_settings

        settings = get_settings()
    return RunContext(
        settings=settings,
        engine=make_engine(settings.database_url),
        day=day,
        progress=progress or NullProgress(),
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
    from pipeline.feeds import ingest_feeds

    return ingest_feeds(ctx.engine, ctx.settings, day=ctx.day, progress=ctx.progress)


def _split(ctx: RunContext) -> dict[str, int]:
    from pipeline.sentences import split_new_articles

    return split_new_articles(ctx.engine, progress=ctx.progress)


def _classify(ctx: RunContext) -> dict[str, int]:
    from pipeline.classify import classify_sentences

    return classify_sentences(ctx.engine, ctx.settings, progress=ctx.progress)


def _signals(ctx: RunContext) -> dict[str, int]:
    from pipeline.signals import compute_signals

    days = [ctx.day - dt.timedelta(days=back) for back in range(SIGNAL_LOOKBACK_DAYS, -1, -1)]
    return compute_signals(ctx.engine, days=days, only_changed=True)


def _detect(ctx: RunContext) -> dict[str, int]:
    from pipeline.alerts import detect_alerts

    return detect_alerts(ctx.engine, ctx.settings, day=ctx.day)


def _send_alerts(ctx: RunContext) -> dict[str, int]:
    from pipeline.alerts import send_pending_alerts

    return send_pending_alerts(ctx.engine, ctx.settings, smtp=ctx.extra.get("smtp"))


# Articles often arrive a day or two after their publication date: recompute those days.
SIGNAL_LOOKBACK_DAYS = 2

STAGES: dict[str, Stage] = {
    "ingest_seeds": _ingest_seeds,
    "ingest_feeds": _ingest_feeds,
    "split": _split,
    "classify": _classify,
    "signals": _signals,
    "detect": _detect,
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
