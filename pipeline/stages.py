"""The names of the daily job's stages, in run order.

A module of its own so the CLI can offer them as choices without importing the stages
(and SQLAlchemy) just to print ``--help``; :mod:`pipeline.daily` checks it agrees.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    ingest_seeds = "ingest_seeds"
    ingest_feeds = "ingest_feeds"
    split_sentences = "split"  # not `split`: that would shadow str.split
    classify = "classify"
    signals = "signals"
    detect = "detect"
    report = "report"
    send_alerts = "send_alerts"


STAGE_NAMES: tuple[str, ...] = tuple(stage.value for stage in Stage)
