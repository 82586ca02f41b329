"""
# Retrain the sentence classifier

Trains a candidate model on `seeds/*.labels.jsonl` (`ESCMON_SEEDS_DIR`) into a
staging folder under `ESCMON_MODELS_DIR` named after the run (the two tasks share
it by the run id; XCom carries only the candidate's version), compares its model
card with the current model's, and promotes it (copies it into the models folder,
where the `classify` stage picks the newest model) **only if it is not worse**.
The promotion task updates the `escmon_active_model` asset (its event's extra
holds the decision and versions), which the daily Dag's classify task reads.

* **Metric**: macro-F1 on the development set when both cards scored the same
  one (same references file), otherwise the cross-validated macro-F1.
* **Decision**: logged in the task log and appended to
  `<models>/promotions.jsonl` (promoted, rejected or unchanged, with both scores).
* **Schedule**: manual (trigger it from the UI or `airflow dags trigger`).
  Params: `promote` (default true; false records the decision as `dry_run`
  without installing). Optional `ESCMON_SHARED_DIR` points at the shared corpora
  so the candidate is also scored on the development set.

The logic lives in `pipeline/promote.py`; this file only wires it into two tasks.
Trigger it from the UI or with `airflow dags trigger retrain_model`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task
from escmon_airflow import ACTIVE_MODEL, START_DATE, env, failure_notifier, quiet_skops_scan

DAG_ID = "retrain_model"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "escmon",
    "retries": 1,
    "retry_delay": dt.timedelta(minutes=10),
    "on_failure_callback": failure_notifier(),
}


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["escmon", "model"],
    doc_md=__doc__,
    params={
        "promote": Param(
            True, type="boolean", description="Install the candidate if it is not worse."
        ),
    },
)
def retrain_model() -> None:
    @task(task_id="train_candidate")
    def train_task(run_id: str | None = None) -> dict[str, str]:
        from pipeline.config import get_settings
        from pipeline.promote import train_candidate

        shared = env("ESCMON_SHARED_DIR", "")
        with quiet_skops_scan():
            trained = train_candidate(
                get_settings(), Path(shared) if shared else None, run_id=run_id or "run"
            )
        return {"version": trained["version"]}  # no path: the next task may run elsewhere

    @task(task_id="promote_if_not_worse", outlets=[ACTIVE_MODEL])
    def promote_task(
        trained: dict[str, str], run_id: str | None = None, params=None, outlet_events=None
    ) -> dict[str, Any]:
        from pipeline.config import get_settings
        from pipeline.promote import promote_if_not_worse, staged_candidate

        settings = get_settings()
        candidate = staged_candidate(settings, run_id or "run")
        with quiet_skops_scan():
            decision = promote_if_not_worse(
                settings,
                candidate,
                run_id or "",
                install_it=bool((params or {}).get("promote", True)),
            )
        if outlet_events is not None:
            outlet_events[ACTIVE_MODEL].extra = {
                key: decision.get(key)
                for key in ("action", "candidate_version", "current_version", "metric")
            }
        return decision

    promote_task(train_task())  # type: ignore[arg-type]  # TaskFlow passes an XComArg


retrain_model()
