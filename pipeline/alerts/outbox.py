"""Sending: SMTP configuration and the outbox that mails each pending alert once.

Failures are sorted by who answered (RFC 5321 reply classes):

* the server rejected this message (MAIL, RCPT or DATA) with a 5xx reply: permanent. The
  alert waits (:func:`backoff`) and is tried again until it has been attempted
  ``alert_max_attempts`` times (``ESCMON_ALERT_MAX_ATTEMPTS``, default 3); the rejection at
  that attempt marks it ``failed`` with the reply in ``last_error``, and it is never tried
  again. Not failing at the first 5xx: ``failed`` is final, and some servers answer 5xx
  for passing trouble (a recipient check that timed out, a policy service down).
* a 4xx reply: temporary. The alert stays pending and waits :func:`backoff` (greylisting
  expects the client to come back later); it never becomes ``failed``. A 421 also means
  the server closed the session, so the remaining alerts wait for the next run.
* no usable server (refused, timed out, disconnected, TLS or login failed): the alert
  stays pending and due. The run stops after the first such failure (one connection
  attempt per run), so a down server is not hammered and the next run tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from dataclasses import dataclass

from sqlalchemy import Engine, func, or_, select, update

from pipeline.alerts.render import render_alert
from pipeline.alerts.smtp import SmtpConfig, SmtpOverrides, connect
from pipeline.config import Settings
from pipeline.tables import Alert, as_utc, utcnow

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=15)


# Errors about one message; anything else means the server or connection is unusable.
MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)

BACKOFF_FIRST = dt.timedelta(minutes=5)
BACKOFF_MAX = dt.timedelta(hours=6)


def backoff(attempts: int) -> dt.timedelta:
    """The wait after a rejected ``attempts``-th send: 5 minutes, doubling, at most 6 hours."""
    return min(BACKOFF_FIRST * 2 ** min(max(attempts - 1, 0), 16), BACKOFF_MAX)


@dataclass(frozen=True)
class Rejection:
    """A server's reply refusing one message."""

    text: str  # the reply (or replies, one per refused recipient), printable
    permanent: bool  # every reply is 5xx
    closing: bool  # a 421: the server closed the session


def _printable(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def rejection(exc: smtplib.SMTPException) -> Rejection:
    """What a refusal raised by ``send_message`` says: ``RCPT TO <a>: 550 5.1.1 ...``."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = [
            (int(code), f"RCPT TO {_printable(addr)}: {code} {_printable(text)}")
            for addr, (code, text) in exc.recipients.items()
        ]
    elif isinstance(exc, smtplib.SMTPSenderRefused):
        replies = [
            (
                exc.smtp_code,
                f"MAIL FROM {_printable(exc.sender)}: {exc.smtp_code} {_printable(exc.smtp_error)}",
            )
        ]
    elif isinstance(exc, smtplib.SMTPResponseException):
        replies = [(exc.smtp_code, f"DATA: {exc.smtp_code} {_printable(exc.smtp_error)}")]
    else:
        replies = []
    codes = [code for code, _ in replies]
    return Rejection(
        text="; ".join(text for _, text in replies)[:2000] or _describe(exc),
        permanent=bool(codes) and all(500 <= code < 600 for code in codes),
        closing=421 in codes,
    )


def claim(engine: Engine, alert_id: int, *, now: dt.datetime, lease: dt.timedelta = LEASE) -> bool:
    """Atomically take ``alert_id`` for sending; False if it is sent or someone else holds it.

    A claim older than ``lease`` is considered abandoned (a crashed sender) and
    can be taken over. The attempt is counted here, before the send. An alert waiting
    out its backoff (``next_attempt_at`` after ``now``) is not taken.
    """
    statement = (
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.status == "pending",
            or_(Alert.claimed_at.is_(None), Alert.claimed_at < now - lease),
            or_(Alert.next_attempt_at.is_(None), Alert.next_attempt_at <= now),
        )
        .values(claimed_at=now, attempts=Alert.attempts + 1)
    )
    with engine.begin() as connection:  # its own short transaction: the UPDATE is the lock
        return connection.execute(statement).rowcount == 1


def mark_sent(engine: Engine, alert_id: int, *, now: dt.datetime, note: str | None = None) -> None:
    """Mark the alert sent; ``note`` keeps the replies of recipients that refused it."""
    statement = (
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == "pending")
        .values(status="sent", sent_at=now, last_error=note, next_attempt_at=None)
    )
    with engine.begin() as connection:
        connection.execute(statement)


def mark_failed(engine: Engine, alert_id: int, error: str) -> None:
    """Give up on a claimed alert: ``failed`` with the server's reply; never sent again."""
    statement = (
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == "pending")
        .values(status="failed", claimed_at=None, last_error=error[:2000], next_attempt_at=None)
    )
    with engine.begin() as connection:
        connection.execute(statement)


def release(
    engine: Engine, alert_id: int, error: str, *, retry_at: dt.datetime | None = None
) -> None:
    """Give a claimed alert back (still pending), recording why the send failed.

    ``retry_at`` (the backoff) keeps it from being claimed before then.
    """
    statement = (
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == "pending")
        .values(claimed_at=None, last_error=error[:2000], next_attempt_at=retry_at)
    )
    with engine.begin() as connection:
        connection.execute(statement)


def _attempts(engine: Engine, alert_id: int) -> int:
    with engine.connect() as connection:
        query = select(Alert.attempts).where(Alert.id == alert_id)
        return int(connection.execute(query).scalar_one())


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _pending_ids(engine: Engine, now: dt.datetime) -> tuple[list[int], int]:
    """Pending alerts that are due (in order), and how many wait out a backoff."""
    query = select(Alert.id, Alert.next_attempt_at).where(Alert.status == "pending")
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(Alert.day, Alert.id)).all()
    due = [r.id for r in rows if r.next_attempt_at is None or as_utc(r.next_attempt_at) <= now]
    return due, len(rows) - len(due)


def send_pending_alerts(
    engine: Engine,
    settings: Settings,
    *,
    smtp: SmtpOverrides = None,
    now: dt.datetime | None = None,
    lease: dt.timedelta = LEASE,
    problems: list[str] | None = None,
) -> dict[str, int]:
    """Send every due pending alert once; returns counts.

    ``smtp`` overrides the mail settings (e.g. those of an Airflow connection, read by
    ``dags/escmon_airflow/smtp.py``).
    Without a host or recipients nothing is sent and ``not_configured`` is 1.
    Counts: ``pending`` alerts at the start, of which ``waiting`` still wait out a backoff;
    ``failed`` sends this run, of which ``given_up`` marked their alert ``failed`` (see the
    module docstring); ``deferred`` alerts left for the next run after the server became
    unusable. A crash between sending and marking sent can resend the
    mail after the lease expires; it keeps its Message-ID, so clients dedupe it.
    Each failed send is appended to ``problems`` (``#id: reply``).
    """
    problems = [] if problems is None else problems
    config = SmtpConfig.from_settings(settings, smtp)
    pending, waiting = _pending_ids(engine, now or utcnow())
    counts = {
        "pending": len(pending) + waiting,
        "sent": 0,
        "failed": 0,
        "given_up": 0,
        "waiting": waiting,
        "skipped": 0,
        "deferred": 0,
        "not_configured": 0,
    }
    reason = config.missing()
    if reason is not None:
        if counts["pending"]:
            log.warning("alerts: %d pending, not sent: %s", counts["pending"], reason)
        counts["not_configured"] = 1
        return counts
    client: smtplib.SMTP | None = None
    try:
        for index, alert_id in enumerate(pending):
            at = now or utcnow()
            if not claim(engine, alert_id, now=at, lease=lease):
                counts["skipped"] += 1  # sent meanwhile, or another sender holds it
                continue
            try:  # a rendering fault is a bug to surface, not an SMTP server to give up on
                message = render_alert(engine, settings, alert_id, smtp=config)
            except BaseException as exc:
                release(engine, alert_id, _describe(exc))
                raise
            try:
                if client is None:
                    client = connect(config)
                refused = client.send_message(
                    message, from_addr=config.sender, to_addrs=list(config.recipients)
                )
            except MESSAGE_ERRORS as exc:
                reply = rejection(exc)
                counts["failed"] += 1
                problems.append(f"#{alert_id}: {reply.text}")
                attempts = _attempts(engine, alert_id)
                if reply.permanent and attempts >= settings.alert_max_attempts:
                    mark_failed(engine, alert_id, reply.text)
                    counts["given_up"] += 1
                    log.warning(
                        "alerts: #%d failed (%d attempts): %s", alert_id, attempts, reply.text
                    )
                else:
                    release(engine, alert_id, reply.text, retry_at=at + backoff(attempts))
                if reply.closing:  # 421: the server ended the session
                    counts["deferred"] = len(pending) - index - 1
                    break
                continue
            except OSError as exc:  # refused, timed out, disconnected, auth failed, ...
                release(engine, alert_id, _describe(exc))
                counts["failed"] += 1
                problems.append(f"#{alert_id}: SMTP {config.host}:{config.port}: {_describe(exc)}")
                counts["deferred"] = len(pending) - index - 1
                log.warning(
                    "alerts: SMTP %s:%s unusable: %s", config.host, config.port, _describe(exc)
                )
                break
            except BaseException as exc:
                release(engine, alert_id, _describe(exc))
                raise
            note = None
            if refused:  # delivered to the others; a per-recipient retry is not kept
                note = (
                    "sent, but refused by "
                    + rejection(smtplib.SMTPRecipientsRefused(dict(refused))).text
                )
                log.warning("alerts: #%d %s", alert_id, note)
            mark_sent(engine, alert_id, now=now or utcnow(), note=note)
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


def suppress_late_alerts(
    engine: Engine, max_age_days: int, *, now: dt.datetime | None = None
) -> int:
    """Mark ``suppressed`` the pending, never-tried alerts detected more than ``max_age_days``
    days after their day (a backfill or catch-up: old news); returns how many.

    An alert detected on time and held back by a mail outage is not touched (it was
    detected within the age). Suppressed alerts stay listed and are never mailed.
    """
    query = select(Alert.id, Alert.day, Alert.created_at).where(
        Alert.status == "pending", Alert.attempts == 0, Alert.claimed_at.is_(None)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    fallback = now or utcnow()
    late = [
        row.id
        for row in rows
        if ((as_utc(row.created_at) or fallback).date() - row.day).days > max_age_days
    ]
    if not late:
        return 0
    statement = (
        update(Alert)
        .where(Alert.id.in_(late), Alert.status == "pending", Alert.attempts == 0)
        .values(
            status="suppressed",
            last_error=f"not mailed: detected more than {max_age_days} "
            "days after its day (ESCMON_ALERT_MAX_AGE_DAYS)",
        )
    )
    with engine.begin() as connection:
        suppressed = connection.execute(statement).rowcount
    log.info("alerts: %d late alert(s) suppressed (older than %d days)", suppressed, max_age_days)
    return suppressed


def unsuppress(engine: Engine, first: dt.date, last: dt.date) -> int:
    """Make the suppressed alerts of the days ``first`` to ``last`` pending again (to mail
    them after all); returns how many."""
    statement = (
        update(Alert)
        .where(Alert.status == "suppressed", Alert.day >= first, Alert.day <= last)
        .values(status="pending", last_error=None)
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount


def pending_count(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(Alert).where(Alert.status == "pending")
        return int(connection.execute(query).scalar_one())
