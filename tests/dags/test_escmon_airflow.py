"""The DAG helpers of ``dags/escmon_airflow``."""

from __future__ import annotations

from pipeline.alerts import SmtpConfig
from pipeline.config import Settings


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
