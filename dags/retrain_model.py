"""
# Retrain the sentence classifier

Trains a candidate model on `seeds/*.labels.jsonl` (`ESCMON_SEEDS_DIR`) into a
staging folder under `ESCMON_MODELS_DIR`, compares its model card with the
current model's, and promotes it (copies it into the models folder, where the
`classify` stage picks the newest model) **only if it is not worse**.

* **Metric**: macro-F1 on the development set when both cards scored the same
  one (same references file), otherwise the cross-validated macro-F1.
* **Decision**: logged in the task log and appended to
  `<models>/promotions.jsonl` (promoted, rejected or unchanged, with both scores).
* **Schedule**: manual by default; set `ESCMON_RETRAIN_SCHEDULE` (e.g.
  `@weekly`) to run it on a schedule. Optional `ESCMON_SHARED_DIR` points at the
  shared corpora so the candidate is also scored on the development set.

The logic lives in `pipeline/promote.py`; this file only wires it into two tasks.
Trigger it from the UI or with `airflow dags trigger retrain_model`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, task
from escmon_airflow import env, failure_notifier, quiet_skops_scan, schedule_from_env

DAG_ID = "retrain_model"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "escmon",
    "retries": int(env("ESCMON_RETRIES", "1")),
    "retry_delay": dt.timedelta(minutes=10),
    "on_failure_callback": failure_notifier(),
}


@dag(
    dag_id=DAG_ID,
    schedule=schedule_from_env("ESCMON_RETRAIN_SCHEDULE", "none"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["escmon", "model"],
    doc_md=__doc__,
)
def retrain_model() -> None:
    @task(task_id="train_candidate")
    def train_task() -> dict[str, str]:
        from pipeline.config import get_settings
        from pipeline.promote import train_candidate

        shared = env("ESCMON_SHARED_DIR", "")
        with quiet_skops_scan():
            return train_candidate(get_settings(), Path(shared) if shared else None)

    @task(task_id="promote_if_not_worse")
    def promote_task(candidate: dict[str, str], run_id: str | None = None) -> dict[str, Any]:
        from pipeline.config import get_settings
        from pipeline.promote import promote_if_not_worse

        with quiet_skops_scan():
            return promote_if_not_worse(get_settings(), candidate, run_id or "")

    promote_task(train_task())  # type: ignore[arg-type]  # TaskFlow passes an XComArg


retrain_model()
