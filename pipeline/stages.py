"""The names of the daily job's stages, in run order.

A module of its own so the CLI can offer them as choices without importing the stages
(and SQLAlchemy) just to print ``--help``; :mod:`pipeline.daily` checks it agrees.
"""

from __future__ import annotations

STAGE_NAMES: tuple[str, ...] = (
    "ingest_seeds",
    "ingest_feeds",
    "split",
    "classify",
    "signals",
    "detect",
    "send_alerts",
)
