"""Mail settings from an Airflow SMTP connection, for the alert outbox."""

from __future__ import annotations

from typing import Any


def smtp_settings_from_airflow(conn_id: str = "smtp_default") -> dict[str, Any]:
    """Mail overrides from an Airflow SMTP connection, read the way Airflow's SmtpHook does.

    ``host``/``port``/``login``/``password``, and extras ``from_email``,
    ``timeout``, ``disable_ssl`` (SSL is on unless disabled) and ``disable_tls``
    (STARTTLS is on unless disabled). Recipients stay ``ESCMON_ALERT_TO``.
    """
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    extra = connection.extra_dejson or {}
    overrides: dict[str, Any] = {
        "smtp_host": connection.host or None,
        "smtp_port": connection.port,
        "smtp_user": connection.login or None,
        "smtp_password": connection.password or None,
        "smtp_ssl": not _truthy(extra.get("disable_ssl", False)),
        "smtp_starttls": not _truthy(extra.get("disable_tls", False)),
        "smtp_timeout": float(extra["timeout"]) if extra.get("timeout") else None,
        "alert_from": extra.get("from_email") or None,
    }
    if overrides["smtp_port"] is None:
        overrides["smtp_port"] = 465 if overrides["smtp_ssl"] else 25
    return {key: value for key, value in overrides.items() if value is not None}


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)
