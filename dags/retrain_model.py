"""
# Retrain the sentence classifiers

Retrains the English model (`seeds/*.labels.jsonl`) and the multilingual one
(`seeds/languages/*.labels.jsonl`), each also on the analysts' labels in its
languages (`escmon label`), exactly as `escmon train` does, and makes a new model
active **only if it is not worse** than the active one on the frozen test set and on
the held-back fifth of the analysts' labels. Then it mails the comparison to the alert
recipients.

* **Where models go**: the data folder (`ESCMON_DATA_DIR`, shared storage when tasks
  run on several workers): a promoted model into `<data>/models/`, where the daily
  `classify` task picks it up, a rejected one into `<data>/models/candidates/`.
  The shipped `models/` folder is never written.
* **Decision**: in the new model's card, the task log and
  `<data>/models/promotions.jsonl` (promoted, rejected or unchanged, with the scores).
* **Mail**: candidate vs active per model (both scores on the test set and on the
  held-back labels, the decision and its reason) to `ESCMON_ALERT_TO`, through the
  `smtp_default` connection (`ESCMON_SMTP_CONN_ID`) or the `ESCMON_SMTP_*` settings.
* **Asset**: `escmon_active_model` gets an event only when a model was promoted
  (`update_active_model` is skipped otherwise); its extra holds the decisions.
* **Schedule**: manual (trigger it from the UI or `airflow dags trigger retrain_model`).
  Params: `promote` (default true; false records the decision as `dry_run` and keeps
  the model a candidate). Optional `ESCMON_SHARED_DIR` points at the shared corpora so
  the English candidate is also scored on the development set.

The logic lives in `pipeline/promote.py` and `pipeline/retrain_mail.py`; tasks pass
only the comparison (plain values) through XCom, never a path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, dag, task
from escmon_airflow import ACTIVE_MODEL, START_DATE, env, failure_notifier, quiet_skops_scan

DAG_ID = "retrain_model"
FAMILIES = ("en", "multi")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "escmon",
    "retries": 1,
    "retry_delay": dt.timedelta(minutes=10),
    "on_failure_callback": failure_notifier(),
}


def _settings() -> Any:
    """The monitor's settings, the store being the ``escmon_store`` connection if defined."""
    from escmon_airflow import store_url

    from pipeline.config import get_settings

    settings = get_settings()
    url = store_url()
    return settings if url is None else settings.model_copy(update={"database_url": url})


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
            True, type="boolean", description="Make a new model active if it is not worse."
        ),
    },
)
def retrain_model() -> None:
    def retrain(family: str) -> Any:
        @task(task_id=f"retrain_{family}")
        def retrain_task(run_id: str | None = None, params=None) -> dict[str, Any]:
            from pathlib import Path

            from pipeline.promote import retrain_family

            shared = env("ESCMON_SHARED_DIR", "")
            with quiet_skops_scan():
                return retrain_family(
                    _settings(),
                    family,
                    run_id=run_id or "",
                    install_it=bool((params or {}).get("promote", True)),
                    shared_dir=Path(shared) if shared else None,
                )

        return retrain_task()

    @task(task_id="mail_comparison")
    def mail_task(summaries: list[dict[str, Any]], run_id: str | None = None) -> str:
        from escmon_airflow.stages import smtp_overrides

        from pipeline.retrain_mail import send_comparison

        return send_comparison(
            _settings(),
            summaries,
            smtp=smtp_overrides(env("ESCMON_SMTP_CONN_ID", "smtp_default")),
            run_id=run_id or "",
        )

    @task(task_id="update_active_model", outlets=[ACTIVE_MODEL])
    def asset_task(summaries: list[dict[str, Any]], outlet_events=None) -> list[str]:
        from airflow.sdk.exceptions import AirflowSkipException

        promoted = [s for s in summaries if s["decision"]["action"] == "promote"]
        if not promoted:
            raise AirflowSkipException("no model was promoted: the active model is unchanged")
        if outlet_events is not None:
            outlet_events[ACTIVE_MODEL].extra = {
                s["name"]: {
                    key: s["decision"].get(key)
                    for key in ("action", "candidate_version", "current_version", "metric")
                }
                for s in summaries
            }
        return [s["decision"]["candidate_version"] for s in promoted]

    summaries = [retrain(family) for family in FAMILIES]
    mail_task(summaries)
    asset_task(summaries)


retrain_model()
