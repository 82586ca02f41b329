"""
# Escalation monitor: the daily job

One task per stage of `escmon run`, chained in the order of
`pipeline.daily.STAGES`. Each task calls the same stage function as the CLI
(`pipeline.daily.run_stage`) for the days of the run's **data interval**.

* **Schedule**: daily at 00:00 UTC; the run at 00:00 of D+1 covers day D
  (interval D to D+1). No catch-up (Airflow's `catchup_by_default`); missed or
  old days: `airflow backfill create ... --max-active-runs 1`.
* **The latest day** fetches the feeds and processes whatever is new. A run
  for a day that ended before today (a backfill, a cleared old run)
  **rebuilds** it from the store: `ingest_feeds` fetches nothing (recorded as
  `fetch_skipped`), the other stages work on that day's articles only, and its
  alerts are recorded as `suppressed`, not mailed (`ESCMON_ALERT_MAX_AGE_DAYS`).
* **Honest states**: `ingest_feeds` logs a WARNING naming each feed it could
  not read and fails past `ESCMON_INGEST_MAX_FAILED_SHARE`; `send_alerts` fails
  (and is retried) when a pending alert could not be sent.
* **Data** passes through the monitor's store: the Airflow connection
  `escmon_store` when defined, else `ESCMON_DATABASE_URL`; tasks return only
  their counts. The `runs` table records Airflow's run id.
* **Reruns** are safe: every stage writes insert-or-ignore, so a second run
  for the same day adds no rows and sends no mail.
* **Failures** are retried, then mailed through the SMTP connection
  `ESCMON_SMTP_CONN_ID` (default `smtp_default`) to `ESCMON_FAILURE_EMAIL`.
* **Model**: the classify task reads the `escmon_active_model` asset, which the
  `retrain_model` Dag updates.

The module does no work at import time: stage code is imported inside tasks.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import chain, dag, task
from escmon_airflow import (
    ACTIVE_MODEL,
    DAILY,
    START_DATE,
    failure_notifier,
    interval_days,
    is_backfill,
)
from escmon_airflow.stages import MODEL_STAGES, run_pipeline_stage

DAG_ID = "escalation_monitor"

# The stages of pipeline.daily.STAGES, in order. Listed here (not imported) so
# parsing the DAG imports no pipeline code; tests/dags checks the two agree.
STAGES: tuple[str, ...] = (
    "ingest_seeds",
    "ingest_feeds",
    "split",
    "classify",
    "signals",
    "detect",
    "report",
    "send_alerts",
)

RETRIES = 2  # per task, 5 minutes apart, doubling

log = logging.getLogger(__name__)


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "escmon",
    "retries": RETRIES,
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "on_failure_callback": failure_notifier(),
}


def stage_task(name: str):
    """A task that runs one stage for the Dag run's interval and returns its counts."""

    @task(
        task_id=name,
        doc_md=f"Runs stage `{name}` of `pipeline.daily` for the days of the run's interval.",
        inlets=[ACTIVE_MODEL] if name in MODEL_STAGES else [],
    )
    def run_stage_task(
        data_interval_start=None, data_interval_end=None, dag_run=None
    ) -> dict[str, int]:
        run_after = getattr(dag_run, "run_after", None)
        first, last = interval_days(data_interval_start, data_interval_end, run_after)
        backfill = is_backfill(
            data_interval_end, getattr(dag_run, "run_type", None), dt.datetime.now(dt.UTC)
        )
        return run_pipeline_stage(name, first, last, run_id=dag_run.run_id, rebuild=backfill)

    return run_stage_task()


@dag(
    dag_id=DAG_ID,
    schedule=DAILY,
    start_date=START_DATE,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["escmon", "daily"],
    doc_md=__doc__,
)
def escalation_monitor() -> None:
    chain(*(stage_task(name) for name in STAGES))


escalation_monitor()
