"""Alerts: the rule that turns signals into alert rows, the e-mail, and the outbox that sends it.

Three steps, each safe to rerun (:mod:`.rule`, :mod:`.render`, :mod:`.outbox`;
:mod:`.smtp` holds the mail settings):

* :func:`detect_alerts` reads a day's signals, applies the rule per scope and
  inserts alert rows (insert-or-ignore on (scope, day)) in the same transaction.
  Each row is complete at creation: numbers, evidence and a stable Message-ID.
* :func:`build_message` renders one alert as a multipart e-mail (plain text,
  HTML from autoescaped Jinja2 templates, and an inline PNG chart).
* :func:`send_pending_alerts` is the outbox: it claims each pending row with a
  conditional UPDATE (so two concurrent senders never mail the same alert),
  sends it, then marks it sent. A temporary failure leaves the row pending with its
  attempts, last error and a backoff; a permanent rejection (5xx) marks it ``failed``
  once ``alert_max_attempts`` attempts are used.

The rule (default, per scope): the escalation-story count alarms under EARS C2
(or C3), the escalation share test agrees (so more news at the same share is
not a spike), and the count is at least ``alert_min_count``.
"""

from pipeline.alerts.outbox import (
    BACKOFF_FIRST,
    BACKOFF_MAX,
    LEASE,
    MESSAGE_ERRORS,
    Rejection,
    backoff,
    claim,
    mark_failed,
    mark_sent,
    pending_count,
    rejection,
    release,
    send_pending_alerts,
    suppress_late_alerts,
    unsuppress,
)
from pipeline.alerts.render import (
    SAFE_URL_CHARS,
    ChartPoint,
    alert_chart,
    alert_subject,
    build_message,
    chart_points,
    cue_labels,
    render_alert,
    render_bodies,
    render_chart,
    rule_for_alert,
    safe_url,
    scope_name,
)
from pipeline.alerts.rule import (
    DETECT_GUARD,
    EVIDENCE_LIMIT,
    EVIDENCE_TEXT_CHARS,
    MESSAGE_ID_DOMAIN,
    AlertRule,
    AlertView,
    Decision,
    Method,
    alert_row,
    default_rule,
    detect_alerts,
    detect_series,
    evaluate,
    evidence_for,
    get_alert,
    list_alerts,
    message_id_for,
    monitoring_start,
    parse_scope_rules,
)
from pipeline.alerts.smtp import (
    SmtpConfig,
    SmtpOverrides,
    connect,
)

__all__ = [
    "BACKOFF_FIRST",
    "BACKOFF_MAX",
    "DETECT_GUARD",
    "EVIDENCE_LIMIT",
    "EVIDENCE_TEXT_CHARS",
    "LEASE",
    "MESSAGE_ERRORS",
    "MESSAGE_ID_DOMAIN",
    "SAFE_URL_CHARS",
    "AlertRule",
    "AlertView",
    "ChartPoint",
    "Decision",
    "Method",
    "Rejection",
    "SmtpConfig",
    "SmtpOverrides",
    "alert_chart",
    "alert_row",
    "alert_subject",
    "backoff",
    "build_message",
    "chart_points",
    "claim",
    "connect",
    "cue_labels",
    "default_rule",
    "detect_alerts",
    "detect_series",
    "evaluate",
    "evidence_for",
    "get_alert",
    "list_alerts",
    "mark_failed",
    "mark_sent",
    "message_id_for",
    "monitoring_start",
    "parse_scope_rules",
    "pending_count",
    "rejection",
    "release",
    "render_alert",
    "render_bodies",
    "render_chart",
    "rule_for_alert",
    "safe_url",
    "scope_name",
    "send_pending_alerts",
    "suppress_late_alerts",
    "unsuppress",
]
