"""The DAG helpers of ``dags/escmon_airflow``."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.alerts import SmtpConfig
from pipeline.config import Settings

UTC = dt.UTC


def test_interval_days_are_the_days_of_the_data_interval() -> None:
    from escmon_airflow import interval_days

    day = dt.datetime(2024, 8, 20, tzinfo=UTC)
    assert interval_days(day, day + dt.timedelta(days=1), None) == (day.date(), day.date())
    week = interval_days(day, day + dt.timedelta(days=7), None)
    assert week == (day.date(), dt.date(2024, 8, 26))
    berlin = dt.timezone(dt.timedelta(hours=2))
    start = dt.datetime(2024, 8, 20, 2, tzinfo=berlin)  # 00:00 UTC
    assert interval_days(start, start + dt.timedelta(days=1), None)[0] == day.date()
    # no interval (a manual run without a logical date): the day it runs on
    noon = dt.datetime(2024, 8, 21, 12, tzinfo=UTC)
    assert interval_days(None, None, noon) == (noon.date(), noon.date())
    with pytest.raises(ValueError, match="neither"):
        interval_days(None, None, None)


def test_a_run_for_a_day_gone_by_is_a_backfill() -> None:
    from escmon_airflow import is_backfill

    now = dt.datetime(2026, 12, 4, 0, 30, tzinfo=UTC)
    midnight = dt.datetime(2026, 12, 4, tzinfo=UTC)
    assert not is_backfill(midnight, "scheduled", now)  # the latest day
    assert is_backfill(midnight - dt.timedelta(days=1), "scheduled", now)  # cleared old run
    assert is_backfill(midnight, "backfill", now)
    assert not is_backfill(None, "manual", now)


def test_runs_id_fits_the_runs_table() -> None:
    from escmon_airflow import runs_id

    assert runs_id("scheduled__2024-08-21T00:00:00+00:00") == "scheduled__2024-08-21T00:00:00+00:00"
    long_a, long_b = "manual__" + "a" * 100, "manual__" + "a" * 99 + "b"
    assert len(runs_id(long_a)) == 64
    assert runs_id(long_a) != runs_id(long_b)


def test_the_store_comes_from_the_escmon_store_connection(monkeypatch) -> None:
    from escmon_airflow import STORE_CONN_ID, store_url

    monkeypatch.delenv("AIRFLOW_CONN_ESCMON_STORE", raising=False)
    assert STORE_CONN_ID == "escmon_store"
    assert store_url() is None  # ESCMON_DATABASE_URL then
    monkeypatch.setenv(
        "AIRFLOW_CONN_ESCMON_STORE",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db.internal",
                "port": 5432,
                "login": "escmon",
                "password": "p@ss",
                "schema": "escmon",
            }
        ),
    )
    assert store_url() == "postgresql+psycopg://escmon:p%40ss@db.internal:5432/escmon"
    monkeypatch.setenv(
        "AIRFLOW_CONN_ESCMON_STORE", json.dumps({"conn_type": "sqlite", "host": "/srv/escmon.db"})
    )
    assert store_url() == "sqlite:////srv/escmon.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_ESCMON_STORE",
        json.dumps({"conn_type": "generic", "extra": {"url": "sqlite:///var/x.db"}}),
    )
    assert store_url() == "sqlite:///var/x.db"
    monkeypatch.setenv("AIRFLOW_CONN_ESCMON_STORE", json.dumps({"conn_type": "http"}))
    with pytest.raises(ValueError, match="postgres or sqlite"):
        store_url()


def test_smtp_overrides_from_an_airflow_connection(monkeypatch) -> None:
    from escmon_airflow.smtp import smtp_settings_from_airflow

    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_TEST",
        '{"conn_type": "smtp", "host": "mail.example.test", "port": 2525, "login": "bot",'
        ' "password": "pw-123456", "extra": {"from_email": "bot@example.test",'
        ' "disable_ssl": true, "timeout": 7}}',
    )
    overrides = smtp_settings_from_airflow("smtp_test")
    assert overrides == {
        "smtp_host": "mail.example.test",
        "smtp_port": 2525,
        "smtp_user": "bot",
        "smtp_password": "pw-123456",
        "smtp_ssl": False,
        "smtp_starttls": True,
        "smtp_timeout": 7.0,
        "alert_from": "bot@example.test",
    }
    config = SmtpConfig.from_settings(Settings(alert_to=["x@example.test"]), overrides)
    assert (config.host, config.port, config.starttls, config.ssl) == (
        "mail.example.test",
        2525,
        True,
        False,
    )


def test_a_task_records_airflow_run_id_without_alembic_chatter(
    pipeline_env, db_url: str, tmp_path, caplog
) -> None:
    import logging

    from escmon_airflow.stages import run_pipeline_stage
    from sqlalchemy import select

    from pipeline import store
    from pipeline.tables import Run
    from tests.dags.airflow_env import REPO

    pipeline_env.setenv("ESCMON_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    pipeline_env.setenv(  # the connection wins over ESCMON_DATABASE_URL
        "AIRFLOW_CONN_ESCMON_STORE", json.dumps({"conn_type": "generic", "extra": {"url": db_url}})
    )
    pipeline_env.setenv("ESCMON_SEEDS_DIR", str(REPO / "seeds"))
    day = dt.date(2024, 8, 20)
    with caplog.at_level(logging.INFO):
        counts = run_pipeline_stage(
            "ingest_seeds", day, day, run_id="scheduled__2024-08-21T00:00:00+00:00"
        )
    assert counts["articles_new"] == 1
    assert not [r for r in caplog.records if r.name.startswith("alembic")]
    engine = store.make_engine(db_url)
    with engine.connect() as connection:
        [run] = connection.execute(select(Run.run_id, Run.run_day, Run.stage)).all()
    engine.dispose()
    assert tuple(run) == ("scheduled__2024-08-21T00:00:00+00:00", day, "ingest_seeds")
