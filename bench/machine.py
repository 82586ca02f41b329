"""What the benchmark ran on, and how much memory it took."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """CPU model, cores, memory (GiB), Python, platform, load average, library versions."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "libraries": _versions(),
    }


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The process's peak resident set size so far, in MiB (``ru_maxrss``); with
    ``resource.RUSAGE_CHILDREN``, that of its largest finished child (a stage's worker)."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "sqlalchemy",
        "scikit-learn",
        "numpy",
        "feedparser",
        "psycopg",
        "pysbd",
        "syntok",
        "datasketch",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out
