"""A throwaway Airflow home for the tests, set before anything imports Airflow.

Airflow reads ``AIRFLOW_HOME`` and its ``AIRFLOW__*`` settings once, when
``airflow`` is first imported, and then writes its config, logs and SQLite
metadata database there. :func:`use_test_airflow_home` points it at a fresh
temporary folder (never the developer's ``~/airflow``) with this repo's
``dags/`` and no example Dags. Each process gets its own home: pytest-xdist
workers inherit the controller's environment, and two workers sharing one
SQLite metadata database would trip over each other. It is idempotent within
a process, and it refuses to run after Airflow was imported with some other home.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
MARKER = "ESCMON_TEST_AIRFLOW_HOME"  # "<pid>:<home>" of the process that made the home


def use_test_airflow_home() -> Path:
    """Point Airflow at a temporary home (once per process); returns the folder."""
    # As Airflow does for its workers: DAG files import their helpers from the dags folder.
    if str(DAGS_FOLDER) not in sys.path:
        sys.path.append(str(DAGS_FOLDER))
    owner, _, existing = os.environ.get(MARKER, "").partition(":")
    if owner == str(os.getpid()) and os.environ.get("AIRFLOW_HOME") == existing:
        return Path(existing)
    if "airflow" in sys.modules:
        raise RuntimeError(
            "airflow was imported before the test AIRFLOW_HOME was set; call "
            "tests.dags.airflow_env.use_test_airflow_home() at the top of tests/conftest.py"
        )
    home = Path(tempfile.mkdtemp(prefix="escmon-airflow-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ.update(
        {
            MARKER: f"{os.getpid()}:{home}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        }
    )
    return home
