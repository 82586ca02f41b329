"""
# Escalation monitor: the daily job

One task per stage of `escmon run`, chained in the order of
`pipeline.daily.STAGES`. Each task calls the same stage function as the CLI
(`pipeline.daily.run_stage`) for the run's **logical date** (the day it
covers), so a backfill or a rerun of an old run processes that old day.

* **Data** passes through the monitor's database (`ESCMON_DATABASE_URL`);
  tasks return only their counts.
* **Reruns** are safe: every stage writes insert-or-ignore, so a second run
  for the same day adds no rows and sends no mail.
* **Failures** are retried, then mailed through the SMTP connection
  `ESCMON_SMTP_CONN_ID` (default `smtp_default`) to `ESCMON_FAILURE_EMAIL`.
* **Schedule**: `ESCMON_SCHEDULE` (cron or preset, default `@daily`; `none`
  turns it off). The run for day D starts when D has ended. Missed days are
  caught up from `ESCMON_START_DATE`; older days: `airflow backfill create`.

The module does no work at import time: stage code is imported inside tasks.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import chain, dag, task
from escmon_airflow import (
    env,
    failure_notifier,
    quiet_skops_scan,
    schedule_from_env,
    start_date_from_env,
)

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
    "send_alerts",
)

# Stages that mail alerts get the SMTP settings of the Airflow connection.
MAIL_STAGES = frozenset({"send_alerts"})

log = logging.getLogger(__name__)


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "escmon",
    "retries": int(env("ESCMON_RETRIES", "2")),
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "on_failure_callback": failure_notifier(),
}


def run_day(logical_date: dt.datetime | None, run_after: dt.datetime | None) -> dt.date:
    """The day a run covers: its logical date (UTC), or when it ran if it has none."""
    moment = logical_date or run_after
    if moment is None:
        raise ValueError("the Dag run has neither a logical date nor a run_after time")
    return moment.astimezone(dt.UTC).date()


def run_pipeline_stage(name: str, day: dt.date) -> dict[str, int]:
    """Run stage ``name`` of the daily job for ``day``, exactly as ``escmon run`` does."""
    from pipeline.config import get_settings
    from pipeline.daily import make_context, run_stage
    from pipeline.store import check_schema

    ctx = make_context(day, get_settings())
    try:
        if name in MAIL_STAGES:
            ctx.extra["smtp"] = smtp_overrides(env("ESCMON_SMTP_CONN_ID", "smtp_default"))
        check_schema(ctx.engine)
        with quiet_skops_scan():
            return run_stage(ctx, name).counts
    finally:
        ctx.engine.dispose()


def smtp_overrides(conn_id: str) -> dict[str, Any] | None:
    """Mail settings from the Airflow connection ``conn_id``; None (ESCMON_SMTP_*) if undefined.

    One connection then serves both the alert mails and the failure notices.
    """
    from airflow.sdk.exceptions import AirflowNotFoundException
    from escmon_airflow.smtp import smtp_settings_from_airflow

    try:
        return smtp_settings_from_airflow(conn_id)
    except AirflowNotFoundException:
        log.warning("no Airflow connection %r: alerts use the ESCMON_SMTP_* settings", conn_id)
        return None


def stage_task(name: str):
    """A task that runs one stage for the Dag run's day and returns its counts."""

    @task(task_id=name, doc_md=f"Runs stage `{name}` of `pipeline.daily` for the run's day.")
    def run_stage_task(logical_date=None, dag_run=None) -> dict[str, int]:
        run_after = dag_run.run_after if dag_run is not None else None
        return run_pipeline_stage(name, run_day(logical_date, run_after))

    return run_stage_task()


@dag(
    dag_id=DAG_ID,
    schedule=schedule_from_env("ESCMON_SCHEDULE", "@daily"),
    start_date=start_date_from_env("ESCMON_START_DATE", "2026-11-01"),
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["escmon", "daily"],
    doc_md=__doc__,
)
def escalation_monitor() -> None:
    chain(*(stage_task(name) for name in STAGES))


escalation_monitor()
