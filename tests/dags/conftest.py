"""Fixtures for the Airflow tests; the throwaway AIRFLOW_HOME is set first, at import.

pytest imports this file while collecting ``tests/dags``, before any test runs
and before anything else imports Airflow (no module under ``tests/`` imports
it at collection time).
"""

from __future__ import annotations

from tests.dags.airflow_env import DAGS_FOLDER, REPO, use_test_airflow_home

AIRFLOW_HOME = use_test_airflow_home()

import datetime as dt  # noqa: E402 - Airflow must not be imported before the line above
import json  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from tests.smtp_server import SmtpServer, running_smtp_server  # noqa: E402

DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))
ROWS_PER_LABEL = 20  # enough for 5-fold CV; trains in seconds instead of a minute


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database, created empty once per test session."""
    from airflow.utils import db

    db.resetdb()
    return AIRFLOW_HOME


def load_dag(dag_id: str) -> Any:
    """The Dag ``dag_id`` parsed from ``dags/`` by Airflow's DagBag (no import errors)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS_FOLDER)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


@pytest.fixture
def pipeline_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """``monkeypatch`` for ESCMON_* variables; the cached settings are reset around the test."""
    from pipeline.config import get_settings

    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def run_dag(dag: Any, day: dt.date) -> Any:
    """``dag.test()`` for ``day``; returns the finished Dag run (it does not raise on failure)."""
    logical_date = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return dag.test(logical_date=logical_date)


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


@pytest.fixture(scope="session")
def small_seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeds folder with the first ROWS_PER_LABEL labelled sentences of each label."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for path in sorted((REPO / "seeds").glob("*.labels.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                by_label[json.loads(line)["label"]].append(line)
    folder = tmp_path_factory.mktemp("small-seeds")
    lines = [line for rows in by_label.values() for line in rows[:ROWS_PER_LABEL]]
    (folder / "small.labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def small_model(small_seeds: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with a model trained on ``small_seeds`` (seconds, not a minute)."""
    from pipeline.classify import train

    models = tmp_path_factory.mktemp("small-model")
    train(small_seeds, models, second_opinion=False)
    return models


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


def smtp_connection(server: SmtpServer) -> str:
    """An Airflow SMTP connection (``AIRFLOW_CONN_*`` JSON) for the test server."""
    return smtp_connection_to(server.host, server.port)


def smtp_connection_to(host: str, port: int) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": host,
            "port": port,
            "extra": {
                "disable_ssl": True,
                "disable_tls": True,
                "timeout": 5,
                "from_email": "escmon@example.test",
            },
        }
    )


@pytest.fixture
def monitor_env(pipeline_env, db_url: str, smtp_server: SmtpServer, tmp_path: Path):
    """ESCMON_* settings for a run against ``db_url`` and the test SMTP server."""
    env = pipeline_env
    env.setenv("ESCMON_DATABASE_URL", db_url)
    env.setenv("ESCMON_SEEDS_DIR", str(REPO / "seeds"))
    env.setenv("ESCMON_MODELS_DIR", str(REPO / "models"))  # the shipped model
    env.setenv("ESCMON_REPORTS_DIR", str(tmp_path / "reports"))
    registry = tmp_path / "feeds.toml"
    if not registry.exists():
        registry.write_text("", encoding="utf-8")  # an empty registry: no feeds (a test may add)
    env.setenv("ESCMON_FEEDS_FILE", str(registry))
    env.setenv("ESCMON_OFFLINE", "false")
    env.setenv("ESCMON_ALERT_TO", "analyst@example.test")
    env.setenv("ESCMON_FAILURE_EMAIL", "ops@example.test")
    env.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(smtp_server))
    return env
