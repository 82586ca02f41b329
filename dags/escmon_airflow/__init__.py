"""Helpers shared by the escalation-monitor DAG files (light: no pipeline imports)."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import CronDataIntervalTimetable

MANUAL = {"none", "off", "manual"}


def env(name: str, default: str) -> str:
    """An environment variable, or ``default`` when unset or blank."""
    return os.environ.get(name, "").strip() or default


@contextmanager
def quiet_skops_scan() -> Iterator[None]:
    """Silence skops' module scan on model load (it warns once per Airflow alias module)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
        yield


def start_date_from_env(variable: str, default: str) -> dt.datetime:
    """``variable`` (an ISO date) as a UTC start date."""
    return dt.datetime.fromisoformat(env(variable, default)).replace(tzinfo=dt.UTC)


def schedule_from_env(variable: str, default: str) -> CronDataIntervalTimetable | None:
    """``variable`` (cron or preset) as a data-interval timetable; ``none`` = manual only.

    A data-interval timetable gives each run the period it covers as its logical
    date (the daily run for 2024-08-20 starts at 2024-08-21 00:00 UTC).
    """
    value = env(variable, default)
    if value.lower() in MANUAL:
        return None
    return CronDataIntervalTimetable(value, timezone="UTC")


def failure_notifier() -> SmtpNotifier:
    """Mail a task's final failure (the provider's templates name the task and the log)."""
    return SmtpNotifier(
        to=[a.strip() for a in env("ESCMON_FAILURE_EMAIL", "ops@localhost").split(",")],
        from_email=env("ESCMON_ALERT_FROM", "escmon@localhost"),
        smtp_conn_id=env("ESCMON_SMTP_CONN_ID", "smtp_default"),
    )
