"""SMTP settings (from ``ESCMON_SMTP_*`` or overrides) and an authenticated session."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Settings


@dataclass(frozen=True)
class SmtpConfig:
    host: str | None
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    ssl: bool = False
    timeout: float = 10.0
    sender: str = "escmon@localhost"
    recipients: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, overrides: SmtpOverrides = None) -> SmtpConfig:
        """The mail settings, with ``overrides`` (Settings field names) taking precedence."""
        if isinstance(overrides, SmtpConfig):
            return overrides
        values: dict[str, Any] = {
            "smtp_host": settings.smtp_host,
            "smtp_port": settings.smtp_port,
            "smtp_user": settings.smtp_user,
            "smtp_password": settings.smtp_password,
            "smtp_starttls": settings.smtp_starttls,
            "smtp_ssl": False,
            "smtp_timeout": settings.smtp_timeout,
            "alert_from": settings.alert_from,
            "alert_to": settings.alert_to,
        }
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        password = values["smtp_password"]
        if hasattr(password, "get_secret_value"):
            password = password.get_secret_value()
        recipients = values["alert_to"]
        if isinstance(recipients, str):
            recipients = [part.strip() for part in recipients.split(",")]
        return cls(
            host=values["smtp_host"] or None,
            port=int(values["smtp_port"]),
            user=values["smtp_user"] or None,
            password=password or None,
            starttls=bool(values["smtp_starttls"]),
            ssl=bool(values["smtp_ssl"]),
            timeout=float(values["smtp_timeout"]),
            sender=values["alert_from"],
            recipients=tuple(r for r in recipients if r),
        )

    def missing(self) -> str | None:
        """Why mail cannot be sent (None when it can)."""
        if not self.host:
            return "no SMTP host configured (ESCMON_SMTP_HOST)"
        if not self.recipients:
            return "no recipients configured (ESCMON_ALERT_TO)"
        return None


SmtpOverrides = Mapping[str, Any] | SmtpConfig | None


def connect(config: SmtpConfig) -> smtplib.SMTP:
    """An open, authenticated SMTP session."""
    if config.ssl:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host or "",
            config.port,
            timeout=config.timeout,
            context=ssl.create_default_context(),
        )
    else:
        client = smtplib.SMTP(config.host or "", config.port, timeout=config.timeout)
    try:
        client.ehlo()
        if config.starttls and not config.ssl:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if config.user:
            client.login(config.user, config.password or "")
    except BaseException:
        client.close()
        raise
    return client
