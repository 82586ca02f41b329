"""Parsing a Dag file does no work: no database, no network, no heavy imports.

Each file is imported in a fresh interpreter after Airflow itself (its own
import configures settings and an engine for the metadata database; that is
Airflow's cost, not ours). Then socket connections and SQLite opens raise (an
audit hook), SQLAlchemy's ``create_engine`` is replaced by one that raises, and
the modules the Dag file imports are listed (the seconds are printed, never asserted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dags.conftest import DAG_FILES

PROBE = r"""
import importlib.util, json, sys, time

import airflow.sdk  # Airflow's own import: config, settings, its ORM engine

import sqlalchemy
import sqlalchemy.engine

touched = []

def audit(event, args):
    if event in ("socket.connect", "sqlite3.connect", "socket.getaddrinfo"):
        touched.append(f"{event} {args!r}")
        raise RuntimeError(f"{event} at parse time")

def no_engine(*args, **kwargs):
    touched.append(f"create_engine {args!r}")
    raise RuntimeError("create_engine at parse time")

sys.addaudithook(audit)
sqlalchemy.create_engine = sqlalchemy.engine.create_engine = no_engine

path = sys.argv[1]
sys.path.append(path.rsplit("/", 1)[0])  # Airflow puts the dags folder on sys.path
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
before = set(sys.modules)
sys.modules[spec.name] = module  # as Airflow's DagBag does (dataclasses need it)
started = time.perf_counter()
error = None
try:
    spec.loader.exec_module(module)
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
seconds = time.perf_counter() - started
heavy = sorted(name for name in set(sys.modules) - before
               if name.split(".")[0] in {"pipeline", "sklearn", "numpy", "scipy", "psycopg",
                                         "feedparser", "trafilatura", "matplotlib", "skops"})
print(json.dumps({"seconds": seconds, "touched": touched, "error": error, "heavy": heavy}))
"""


def probe(path: Path) -> dict:
    """Import ``path`` in a fresh interpreter after Airflow; what it touched and how long."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda path: path.name)
def test_parsing_touches_no_database_or_network_and_imports_nothing_heavy(path: Path) -> None:
    """Parse cost is guarded by what is imported, not by a wall-clock limit."""
    report = probe(path)
    assert report["error"] is None, report["error"]
    assert report["touched"] == []
    assert report["heavy"] == [], "pipeline and ML code is imported inside the tasks"


def test_probe_catches_a_dag_file_that_connects(tmp_path: Path) -> None:
    bad = tmp_path / "bad_dag.py"
    bad.write_text(
        "import socket\n"
        "from sqlalchemy import create_engine\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "except Exception:\n"
        "    pass\n"
        "engine = create_engine('sqlite://')\n"
    )
    report = probe(bad)
    events = [entry.split()[0] for entry in report["touched"]]
    assert events[0].startswith("socket.") and events[-1] == "create_engine", events
    assert "create_engine at parse time" in report["error"]
