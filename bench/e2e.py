"""The daily job end to end on stored articles, and a rerun of the finished day.

The generated articles are stored directly as feed articles (the network is not part of
the figure); then the sentence stages that follow ingestion (:data:`E2E_STAGES`, those
present in :data:`pipeline.daily.STAGES`) run through :func:`pipeline.daily.run_stage`,
in-process, exactly as ``escmon run`` runs them. ``sentences_per_s`` is the sentences the
split stage stored divided by the wall time of all those stages.

The rerun first completes the day with :func:`pipeline.daily.run_daily` (every stage,
offline), then times a second ``run_daily`` for the same day, which finds nothing new.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.corpus import DAY
from pipeline.config import Settings
from pipeline.daily import STAGES, StageError, make_context, run_daily, run_stage

REPO = Path(__file__).resolve().parents[1]
E2E_STAGES = ("split", "classify", "signals")


@dataclass
class E2EResult:
    stages: dict[str, float] = field(default_factory=dict)  # name -> seconds
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    sentences: int = 0
    seconds: float = 0.0
    rerun_seconds: float | None = None
    rerun_stages: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def sentences_per_s(self) -> float:
        return self.sentences / self.seconds if self.seconds else 0.0


def bench_settings(
    url: str, models_dir: Path, workdir: Path, workers: int = 0, second_opinion: bool = False
) -> Settings:
    """Offline settings on ``url`` with the project's seeds and the bench's models;
    ``workers`` as ``ESCMON_WORKERS`` (0: the default, the usable CPUs up to 4);
    ``second_opinion`` as ``ESCMON_SECOND_OPINION`` (off: the fast path). Without a
    multilingual model in ``models_dir`` the run is English only, as configured, so the
    English-corpus runs do not warn that one is missing."""
    multi = Settings.model_fields["multi_model_name"].default  # without importing the models
    has_multi = any(models_dir.glob(f"{multi}-*.skops"))
    return Settings(
        database_url=url,
        seeds_dir=REPO / "seeds",
        models_dir=models_dir,
        multi_model_name=multi if has_multi else "",
        feeds_file=workdir / "feeds.toml",  # absent: no feed to fetch
        offline=True,
        workers=workers,
        second_opinion=second_opinion,
    )


def present_stages() -> list[str]:
    """The timed stages that exist today, in the job's order."""
    return [name for name in STAGES if name in E2E_STAGES]


def run_e2e(settings: Settings, day: dt.date = DAY) -> E2EResult:
    """Time the sentence stages over the stored articles (see the module docstring)."""
    result = E2EResult()
    missing = [name for name in E2E_STAGES if name not in STAGES]
    if missing:
        result.notes.append(f"stages not in pipeline.daily.STAGES yet: {', '.join(missing)}")
    ctx = make_context(day, settings)
    try:
        started = time.perf_counter()
        for name in present_stages():
            stage = run_stage(ctx, name)
            result.stages[name] = stage.duration_s
            result.counts[name] = stage.counts
        result.seconds = time.perf_counter() - started
    except StageError as exc:
        result.notes.append(f"end to end stopped: {exc}")
        result.seconds = 0.0
        return result
    finally:
        ctx.engine.dispose()
    result.sentences = int(result.counts.get("split", {}).get("sentences_new", 0))
    return result


def run_rerun(settings: Settings, result: E2EResult, day: dt.date = DAY) -> None:
    """Finish the day with ``run_daily``, then time a second ``run_daily`` into ``result``."""
    ctx = make_context(day, settings)
    again = make_context(day, settings)
    try:
        run_daily(ctx)  # complete the day: the seed article, every other stage
        started = time.perf_counter()
        stages = run_daily(again)
        result.rerun_seconds = time.perf_counter() - started
        result.rerun_stages = {stage.stage: stage.duration_s for stage in stages}
    except StageError as exc:
        result.notes.append(f"rerun skipped, the daily job failed: {exc}")
    finally:
        ctx.engine.dispose()
        again.engine.dispose()
