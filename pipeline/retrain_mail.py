"""The retrain comparison mail: candidate vs active model, per family, and the decision.

Built from :meth:`pipeline.promote.GuardOutcome.summary` (plain JSON values, as the
retrain Dag passes them between tasks) and sent to the alert recipients
(``ESCMON_ALERT_TO``) through the alert mail's SMTP settings and session
(:mod:`pipeline.alerts.smtp`). Plain text and HTML; every value is escaped in the HTML.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from typing import Any

from pipeline.config import Settings

log = logging.getLogger(__name__)

CHECK_NAMES = {
    "test_set": "frozen test set",
    "analyst_held_back": "held-back analyst labels",
}
ACTION_WORDS = {
    "promote": "promoted, active now",
    "reject": "not promoted, kept as a candidate",
    "unchanged": "unchanged (same data and parameters)",
    "dry_run": "not installed (dry run)",
    "skipped": "not trained",
}


def _f1(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def _headline(summary: Mapping[str, Any]) -> str:
    decision = summary.get("decision") or {}
    action = str(decision.get("action", ""))
    return f"{summary.get('name') or summary.get('family')} {ACTION_WORDS.get(action, action)}"


def comparison_subject(summaries: Sequence[Mapping[str, Any]]) -> str:
    return "Model retrain: " + "; ".join(_headline(summary) for summary in summaries)


def comparison_text(summaries: Sequence[Mapping[str, Any]], run_id: str = "") -> str:
    """The plain-text body: per model, versions, decision, reason and the check table."""
    lines = [f"Retrain {run_id}".rstrip(), ""]
    for summary in summaries:
        decision = summary.get("decision") or {}
        labels = summary.get("analyst_labels") or {}
        lines += [
            f"{summary.get('name') or summary.get('family')}: "
            f"{ACTION_WORDS.get(str(decision.get('action')), decision.get('action'))}",
            f"  candidate {decision.get('candidate_version') or '-'}, "
            f"active {decision.get('current_version') or '(none)'}",
            f"  reason: {decision.get('reason', '')}",
            f"  analyst labels: {labels.get('train', 0)} trained on, "
            f"{labels.get('held_back', 0)} held back",
        ]
        for check in summary.get("checks") or []:
            lines.append(
                f"  {CHECK_NAMES.get(check['name'], check['name'])} ({check['n']} sentences): "
                f"candidate {_f1(check.get('candidate'))}, active {_f1(check.get('active'))}"
            )
        lines.append("")
    return "\n".join(lines)


def comparison_html(summaries: Sequence[Mapping[str, Any]], run_id: str = "") -> str:
    """The HTML body: the same content, every value escaped."""
    parts = [
        '<!doctype html><html><body style="font-family: sans-serif">',
        f"<h2>Model retrain {escape(run_id)}</h2>",
    ]
    for summary in summaries:
        decision = summary.get("decision") or {}
        labels = summary.get("analyst_labels") or {}
        action = str(decision.get("action", ""))
        parts += [
            f"<h3>{escape(str(summary.get('name') or summary.get('family')))}: "
            f"{escape(ACTION_WORDS.get(action, action))}</h3>",
            "<p>",
            f"Candidate <code>{escape(str(decision.get('candidate_version') or '-'))}</code>, "
            f"active <code>{escape(str(decision.get('current_version') or '(none)'))}</code>.<br>",
            f"Reason: {escape(str(decision.get('reason', '')))}<br>",
            f"Analyst labels: {int(labels.get('train', 0))} trained on, "
            f"{int(labels.get('held_back', 0))} held back.",
            "</p>",
        ]
        checks = summary.get("checks") or []
        if checks:
            parts.append(
                '<table border="1" cellpadding="4" style="border-collapse: collapse">'
                "<tr><th>macro-F1 on</th><th>sentences</th><th>candidate</th><th>active</th></tr>"
            )
            for check in checks:
                name = CHECK_NAMES.get(check["name"], check["name"])
                parts.append(
                    f"<tr><td>{escape(str(name))}</td><td>{int(check['n'])}</td>"
                    f"<td>{_f1(check.get('candidate'))}</td><td>{_f1(check.get('active'))}</td></tr>"
                )
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def comparison_message(
    summaries: Sequence[Mapping[str, Any]],
    *,
    sender: str,
    recipients: Sequence[str],
    run_id: str = "",
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = comparison_subject(summaries)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = make_msgid(domain="escmon.retrain")
    message["Date"] = formatdate(usegmt=True)
    message["X-Escmon-Retrain"] = run_id or "-"
    message.set_content(comparison_text(summaries, run_id))
    message.add_alternative(comparison_html(summaries, run_id), subtype="html")
    return message


def send_comparison(
    settings: Settings,
    summaries: Sequence[Mapping[str, Any]],
    *,
    smtp: Mapping[str, Any] | None = None,
    run_id: str = "",
) -> str:
    """Mail the comparison to ``ESCMON_ALERT_TO`` (``smtp``: overrides of the mail settings,
    e.g. from an Airflow connection). Returns ``sent`` or ``not_configured`` (logged);
    an SMTP failure raises."""
    from pipeline.alerts.smtp import SmtpConfig, connect

    config = SmtpConfig.from_settings(settings, smtp)
    missing = config.missing()
    if missing:
        log.warning("retrain comparison not mailed: %s", missing)
        return "not_configured"
    message = comparison_message(
        summaries, sender=config.sender, recipients=config.recipients, run_id=run_id
    )
    client = connect(config)
    try:
        client.send_message(message)
    finally:
        try:
            client.quit()
        except Exception:  # the mail is sent; a failing QUIT changes nothing
            client.close()
    log.info("retrain comparison mailed to %s", ", ".join(config.recipients))
    return "sent"
