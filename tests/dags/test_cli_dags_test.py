"""The documented check: ``airflow dags test escalation_monitor <date>`` on an embedded store.

The run dated 2024-08-21 covers 2024-08-20 (the seed article's day), a day gone by: it is
rebuilt from the store, so it fetches nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import store
from tests.dags.airflow_env import REPO

AIRFLOW = Path(sys.executable).parent / "airflow"


def dags_test(env: dict[str, str], date: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AIRFLOW), "dags", "test", "escalation_monitor", date],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_airflow_dags_test_runs_the_day_and_a_rerun_adds_no_rows(airflow_db, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'escmon.db'}"
    store.upgrade(url)
    (tmp_path / "feeds.toml").write_text("", encoding="utf-8")  # an empty feed registry
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ESCMON_", "AIRFLOW_CONN_"))
    }
    env.update(
        {
            "AIRFLOW_HOME": os.environ["AIRFLOW_HOME"],  # the session's, migrated by airflow_db
            "ESCMON_DATABASE_URL": url,
            "ESCMON_SEEDS_DIR": str(REPO / "seeds"),
            "ESCMON_MODELS_DIR": str(REPO / "models"),  # the shipped model
            "ESCMON_FEEDS_FILE": str(tmp_path / "feeds.toml"),
            "ESCMON_REPORTS_DIR": str(tmp_path / "reports"),
        }
    )
    first = dags_test(env, "2024-08-21")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "state=success" in first.stdout + first.stderr
    engine = store.make_engine(url)
    counts = store.table_counts(engine)
    assert counts["articles"] == 1
    assert counts["sentences"] > 40
    assert counts["predictions"] == counts["sentences"]
    with engine.connect() as connection:
        run_ids = set(connection.exec_driver_sql("SELECT run_id FROM runs").scalars())
    assert len(run_ids) == 1 and run_ids.pop().startswith("manual__")

    second = dags_test(env, "2024-08-21")
    assert second.returncode == 0, second.stderr[-3000:]
    again = store.table_counts(engine)
    assert again.pop("runs") == 2 * counts.pop("runs")
    assert again == counts
    engine.dispose()
