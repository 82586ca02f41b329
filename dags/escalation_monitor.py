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
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pendulum
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import CronDataIntervalTimetable, chain, dag, task

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


def env(name: str, default: str) -> str:
    """An environment variable, or ``default`` when unset or blank."""
    return os.environ.get(name, "").strip() or default


@contextmanager
def quiet_skops_scan() -> Iterator[None]:
    """Silence skops' module scan on model load (it warns once per Airflow alias module)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
        yield


def schedule_from_env(default: str = "@daily") -> CronDataIntervalTimetable | None:
    """``ESCMON_SCHEDULE`` as a data-interval timetable (``none`` = manual only).

    A data-interval timetable gives each run the day it covers as its logical
    date (the run for 2024-08-20 starts at 2024-08-21 00:00 UTC).
    """
    value = env("ESCMON_SCHEDULE", default)
    if value.lower() in {"none", "off", "manual"}:
        return None
    return CronDataIntervalTimetable(value, timezone="UTC")


def failure_notifier() -> SmtpNotifier:
    """Mail a task's final failure (the provider's templates name the task and the log)."""
    return SmtpNotifier(
        to=[a.strip() for a in env("ESCMON_FAILURE_EMAIL", "ops@localhost").split(",")],
        from_email=env("ESCMON_ALERT_FROM", "escmon@localhost"),
        smtp_conn_id=env("ESCMON_SMTP_CONN_ID", "smtp_default"),
    )


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

    from pipeline.alerts import smtp_settings_from_airflow

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
    schedule=schedule_from_env(),
    start_date=pendulum.parse(env("ESCMON_START_DATE", "2026-11-01"), tz="UTC"),
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["escmon", "daily"],
    doc_md=__doc__,
)
def escalation_monitor() -> None:
    chain(*(stage_task(name) for name in STAGES))


escalation_monitor()
