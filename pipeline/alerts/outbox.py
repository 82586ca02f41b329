"""Sending: SMTP configuration and the outbox that mails each pending alert once."""

from __future__ import annotations

import datetime as dt
import logging
import smtplib

from sqlalchemy import Engine, func, or_, select, update

from pipeline.alerts.render import render_alert
from pipeline.alerts.smtp import SmtpConfig, SmtpOverrides, connect
from pipeline.config import Settings
from pipeline.tables import Alert, utcnow

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=15)


# Errors about one message; anything else means the server or connection is unusable.
MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


def claim(engine: Engine, alert_id: int, *, now: dt.datetime, lease: dt.timedelta = LEASE) -> bool:
    """Atomically take ``alert_id`` for sending; False if it is sent or someone else holds it.

    A claim older than ``lease`` is considered abandoned (a crashed sender) and
    can be taken over. The attempt is counted here, before the send.
    """
    statement = (
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.status == "pending",
            or_(Alert.claimed_at.is_(None), Alert.claimed_at < now - lease),
        )
        .values(claimed_at=now, attempts=Alert.attempts + 1)
    )
    with engine.begin() as connection:  # its own short transaction: the UPDATE is the lock
        return connection.execute(statement).rowcount == 1


def mark_sent(engine: Engine, alert_id: int, *, now: dt.datetime) -> None:
    statement = (
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == "pending")
        .values(status="sent", sent_at=now, last_error=None)
    )
    with engine.begin() as connection:
        connection.execute(statement)


def release(engine: Engine, alert_id: int, error: str) -> None:
    """Give a claimed alert back (still pending), recording why the send failed."""
    statement = (
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == "pending")
        .values(claimed_at=None, last_error=error[:2000])
    )
    with engine.begin() as connection:
        connection.execute(statement)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _pending_ids(engine: Engine) -> list[int]:
    query = select(Alert.id).where(Alert.status == "pending").order_by(Alert.day, Alert.id)
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def send_pending_alerts(
    engine: Engine,
    settings: Settings,
    *,
    smtp: SmtpOverrides = None,
    now: dt.datetime | None = None,
    lease: dt.timedelta = LEASE,
) -> dict[str, int]:
    """Send every pending alert once; returns counts.

    ``smtp`` overrides the mail settings (e.g. those of an Airflow connection, read by
    ``dags/escmon_airflow/smtp.py``).
    Without a host or recipients nothing is sent and ``not_configured`` is 1.
    After a connection-level failure the remaining alerts are left for the next
    run (``deferred``). A crash between sending and marking sent can resend the
    mail after the lease expires; it keeps its Message-ID, so clients dedupe it.
    """
    config = SmtpConfig.from_settings(settings, smtp)
    pending = _pending_ids(engine)
    counts = {
        "pending": len(pending),
        "sent": 0,
        "failed": 0,
        "skipped": 0,
        "deferred": 0,
        "not_configured": 0,
    }
    reason = config.missing()
    if reason is not None:
        if pending:
            log.warning("alerts: %d pending, not sent: %s", len(pending), reason)
        counts["not_configured"] = 1
        return counts
    client: smtplib.SMTP | None = None
    try:
        for index, alert_id in enumerate(pending):
            at = now or utcnow()
            if not claim(engine, alert_id, now=at, lease=lease):
                counts["skipped"] += 1  # sent meanwhile, or another sender holds it
                continue
            try:
                message = render_alert(engine, settings, alert_id, smtp=config)
                if client is None:
                    client = connect(config)
                client.send_message(
                    message, from_addr=config.sender, to_addrs=list(config.recipients)
                )
            except MESSAGE_ERRORS as exc:
                release(engine, alert_id, _describe(exc))
                counts["failed"] += 1
                continue
            except OSError as exc:  # refused, timed out, disconnected, auth failed, ...
                release(engine, alert_id, _describe(exc))
                counts["failed"] += 1
                counts["deferred"] = len(pending) - index - 1
                log.warning(
                    "alerts: SMTP %s:%s unusable: %s", config.host, config.port, _describe(exc)
                )
                break
            except BaseException as exc:
                release(engine, alert_id, _describe(exc))
                raise
            mark_sent(engine, alert_id, now=now or utcnow())
            counts["sent"] += 1
    finally:
        if client is not None:
            _quit(client)
    return counts


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def pending_count(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(Alert).where(Alert.status == "pending")
        return int(connection.execute(query).scalar_one())
