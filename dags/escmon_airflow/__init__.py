"""Helpers shared by the escalation-monitor DAG files (light: no pipeline imports)."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import Asset, CronTriggerTimetable

# The model the classify stage uses: the retrain Dag's promotion updates it (an asset
# event with the decision), the daily Dag's classify task reads it (lineage in the UI).
ACTIVE_MODEL = Asset(name="escmon_active_model", uri="escmon://models/active", group="model")

# The store as an Airflow connection (postgres or sqlite); ESCMON_DATABASE_URL without it.
STORE_CONN_ID = "escmon_store"

# Runs at 00:00 UTC for the day that has just ended: the run after day D covers D.
DAILY = CronTriggerTimetable("0 0 * * *", timezone="UTC", interval=dt.timedelta(days=1))

# The earliest day a run may cover. Catch-up is off (Airflow's own
# [scheduler] catchup_by_default), so this queues nothing; backfills may go earlier.
START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

# The runs table's run_id column holds 64 characters.
RUN_ID_CHARS = 64


def env(name: str, default: str) -> str:
    """An environment variable, or ``default`` when unset or blank."""
    return os.environ.get(name, "").strip() or default


@contextmanager
def quiet_skops_scan() -> Iterator[None]:
    """Silence skops' module scan on model load (it warns once per Airflow alias module)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
        yield


def interval_days(
    start: dt.datetime | None, end: dt.datetime | None, run_after: dt.datetime | None
) -> tuple[dt.date, dt.date]:
    """The first and last day (UTC) of a run's data interval ``[start, end)``.

    A run without an interval (a manual run with no logical date) covers the day it
    runs on, as ``escmon run`` does.
    """
    if start is not None and end is not None and end > start:
        first = start.astimezone(dt.UTC).date()
        last = (end.astimezone(dt.UTC) - dt.timedelta(microseconds=1)).date()
        return first, last
    moment = end or start or run_after
    if moment is None:
        raise ValueError("the Dag run has neither a data interval nor a run_after time")
    day = moment.astimezone(dt.UTC).date()
    return day, day


def is_backfill(end: dt.datetime | None, run_type: str | None, now: dt.datetime) -> bool:
    """A run for days gone by: a backfill, or an interval that ended before today (UTC).

    Such a run rebuilds its days from the store: it fetches no feed (the feeds hold
    today's entries) and mails no late alert.
    """
    if str(run_type or "").lower().endswith("backfill"):
        return True
    if end is None:
        return False
    midnight = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)
    return end.astimezone(dt.UTC) < midnight


def runs_id(run_id: str) -> str:
    """Airflow's run id as the runs table keeps it (64 characters; longer ones are cut
    and end in a hash of the whole id, so they stay distinct)."""
    if len(run_id) <= RUN_ID_CHARS:
        return run_id
    import hashlib

    digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return f"{run_id[: RUN_ID_CHARS - 13]}~{digest}"


def store_url(conn_id: str = STORE_CONN_ID) -> str | None:
    """The store's SQLAlchemy URL from the Airflow connection ``conn_id``; None if undefined.

    A ``postgres`` connection becomes ``postgresql+psycopg://``; a ``sqlite`` one names the
    database file in its host; any connection may give the URL itself as extra ``url``.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return url_of_connection(connection)


def url_of_connection(connection: Any) -> str:
    from sqlalchemy.engine import URL

    extra = connection.extra_dejson or {}
    if extra.get("url"):
        return str(extra["url"])
    kind = (connection.conn_type or "").lower()
    if kind in {"postgres", "postgresql"}:
        url = URL.create(
            "postgresql+psycopg",
            username=connection.login or None,
            password=connection.password or None,
            host=connection.host or None,
            port=connection.port or None,
            database=connection.schema or None,
        )
        return url.render_as_string(hide_password=False)
    if kind == "sqlite":
        return f"sqlite:///{connection.host}"
    raise ValueError(
        f"Airflow connection {connection.conn_id!r} is of type {kind!r}; use a postgres or "
        "sqlite connection, or give the SQLAlchemy URL as extra 'url'"
    )


def failure_notifier() -> SmtpNotifier:
    """Mail a task's final failure (the provider's templates name the task and the log)."""
    return SmtpNotifier(
        to=[a.strip() for a in env("ESCMON_FAILURE_EMAIL", "ops@localhost").split(",")],
        from_email=env("ESCMON_ALERT_FROM", "escmon@localhost"),
        smtp_conn_id=env("ESCMON_SMTP_CONN_ID", "smtp_default"),
    )
