"""Alerts: the rule that turns signals into alert rows, the e-mail, and the outbox that sends it.

Three steps, each safe to rerun:

* :func:`detect_alerts` reads a day's signals, applies the rule per scope and
  inserts alert rows (insert-or-ignore on (scope, day)) in the same transaction.
  Each row is complete at creation: numbers, evidence and a stable Message-ID.
* :func:`build_message` renders one alert as a multipart e-mail (plain text,
  HTML from autoescaped Jinja2 templates, and an inline PNG chart).
* :func:`send_pending_alerts` is the outbox: it claims each pending row with a
  conditional UPDATE (so two concurrent senders never mail the same alert),
  sends it, then marks it sent. A failed send leaves the row pending with its
  attempts and last error, for the next run.

The rule (default, per scope): the escalation-story count alarms under EARS C2
(or C3), the escalation share test agrees (so more news at the same share is
not a spike), and the count is at least ``alert_min_count``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.detect import DetectionResult, ears, share_test
from pipeline.signals import (
    ALL,
    ESCALATION,
    SignalPoint,
    country_match,
    scopes_on,
    scored_sentences,
    signal_series,
)
from pipeline.store import insert_ignore, session_scope
from pipeline.tables import Alert, Article, DailySignal, Prediction, Sentence, utcnow

log = logging.getLogger(__name__)

Method = Literal["ears-c2", "ears-c3"]
METHODS: tuple[str, ...] = ("ears-c2", "ears-c3")
EVIDENCE_LIMIT = 5
EVIDENCE_TEXT_CHARS = 600
LEASE = dt.timedelta(minutes=15)
DETECT_GUARD = 2  # C2/C3 leave out the two days before t
MESSAGE_ID_DOMAIN = "escmon"


# --- the rule (pure) -----------------------------------------------------------


@dataclass(frozen=True)
class AlertRule:
    """How one scope alerts. ``require_share=False`` drops the share test."""

    method: Method = "ears-c2"
    min_count: int = 5
    share_alpha: float = 0.01
    require_share: bool = True
    ears_alpha: float | None = None  # None: the detector's default for the method
    min_sigma: float = 0.0
    baseline: int = 7

    @property
    def label(self) -> str:
        """What the alert row's ``method`` records, e.g. ``ears-c2+share``."""
        return f"{self.method}+share" if self.require_share else self.method

    @property
    def history_days(self) -> int:
        """Days of series the detector needs before the day it judges (C3 needs two more)."""
        return self.baseline + DETECT_GUARD + (2 if self.method == "ears-c3" else 0)


def default_rule(settings: Settings) -> AlertRule:
    return AlertRule(
        method=settings.alert_method,
        min_count=settings.alert_min_count,
        share_alpha=settings.alert_share_alpha,
    )


def parse_scope_rules(settings: Settings) -> dict[str, AlertRule]:
    """Per-scope rules from ``alert_scopes`` entries ``SCOPE[:METHOD[:MIN_COUNT]]``.

    ``["all", "BLR:ears-c3:3"]`` watches ``all`` with the default rule and
    Belarus with C3 and a minimum of 3 stories. An empty list gives ``{}``:
    every scope with signals that day, with the default rule.
    """
    base = default_rule(settings)
    rules: dict[str, AlertRule] = {}
    for entry in settings.alert_scopes:
        parts = [part.strip() for part in entry.split(":")]
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"alert scope {entry!r}: expected SCOPE[:METHOD[:MIN_COUNT]]")
        scope = ALL if parts[0].lower() == ALL else parts[0].upper()
        rule = base
        if len(parts) > 1 and parts[1]:
            method = parts[1].lower()
            if method not in METHODS:
                raise ValueError(f"alert scope {entry!r}: method must be one of {METHODS}")
            rule = replace(rule, method=method)  # type: ignore[arg-type]
        if len(parts) > 2 and parts[2]:
            if not parts[2].isdigit():
                raise ValueError(f"alert scope {entry!r}: MIN_COUNT must be a whole number")
            rule = replace(rule, min_count=int(parts[2]))
        rules[scope] = rule
    return rules


@dataclass(frozen=True)
class Decision:
    """The rule's verdict on the last day of a series, with the detectors' numbers."""

    fire: bool
    count: DetectionResult
    share: DetectionResult

    @property
    def reason(self) -> str:
        if self.fire:
            return "alarm"
        if not self.count.alarm:
            return "count within threshold"
        if not self.share.alarm:
            return "share within threshold"
        return "count below minimum"


def detect_series(
    series: Sequence[SignalPoint], rule: AlertRule
) -> tuple[list[DetectionResult], list[DetectionResult]]:
    """EARS on escalation-story counts and the share test on escalation sentences, per day."""
    dates = [point.day for point in series]
    counts = ears(
        dates,
        [point.escalation_stories for point in series],
        rule.method.removeprefix("ears-"),  # type: ignore[arg-type]
        alpha=rule.ears_alpha,
        baseline=rule.baseline,
        min_sigma=rule.min_sigma,
    )
    shares = share_test(
        dates,
        [point.escalation_count for point in series],
        [point.sentences_scored for point in series],
        baseline=rule.baseline,
        alpha=rule.share_alpha,
        guard=DETECT_GUARD,
    )
    return counts, shares


def evaluate(series: Sequence[SignalPoint], rule: AlertRule) -> Decision:
    """Apply ``rule`` to the last day of ``series`` (consecutive days, oldest first)."""
    counts, shares = detect_series(series, rule)
    count, share = counts[-1], shares[-1]
    fire = (
        count.alarm
        and (share.alarm or not rule.require_share)
        and count.observed >= rule.min_count
    )
    return Decision(fire=fire, count=count, share=share)


def message_id_for(scope: str, day: dt.date, method: str) -> str:
    """A Message-ID that depends only on what the alert is about (stable across reruns)."""
    digest = hashlib.sha256(f"{scope}|{day.isoformat()}|{method}".encode()).hexdigest()[:12]
    safe_scope = re.sub(r"[^A-Za-z0-9]", "", scope) or "scope"
    return f"<alert-{safe_scope}-{day.isoformat()}-{digest}@{MESSAGE_ID_DOMAIN}>"


def alert_row(
    scope: str, day: dt.date, rule: AlertRule, decision: Decision, evidence: list[dict]
) -> dict[str, Any]:
    """The ``alerts`` row for a fired decision."""
    return {
        "scope": scope,
        "day": day,
        "method": rule.label,
        "observed": decision.count.observed,
        "baseline_mean": decision.count.baseline_mean,
        "threshold": decision.count.upper_bound,
        "statistic": decision.count.statistic,
        "p_value": decision.share.p_value,
        "evidence": evidence,
        "status": "pending",
        "attempts": 0,
        "message_id": message_id_for(scope, day, rule.label),
    }


# --- detection edge -------------------------------------------------------------


def evidence_for(
    session: Session, scope: str, day: dt.date, *, limit: int = EVIDENCE_LIMIT
) -> list[dict[str, Any]]:
    """The day's most probable escalation sentences in ``scope``, one per story."""
    scored = scored_sentences([day])
    query = (
        select(
            scored.c.sentence_id,
            scored.c.article_id,
            scored.c.story_id,
            scored.c.p_escalation,
            scored.c.model_version,
            Sentence.text,
            Article.title,
            Article.publisher,
            Article.url,
            Prediction.cues,
        )
        .join(Sentence, Sentence.id == scored.c.sentence_id)
        .join(Article, Article.id == scored.c.article_id)
        .join(
            Prediction,
            and_(
                Prediction.sentence_id == scored.c.sentence_id,
                Prediction.model_version == scored.c.model_version,
            ),
        )
        .where(scored.c.label == ESCALATION)
        .order_by(scored.c.p_escalation.desc(), scored.c.sentence_id)
        .limit(limit * 20)
    )
    if scope != ALL:
        query = query.where(country_match(scored.c.countries, scope))
    evidence: list[dict[str, Any]] = []
    stories: set[Any] = set()
    for row in session.execute(query):
        story = row.story_id if row.story_id is not None else ("article", row.article_id)
        if story in stories:
            continue  # a near-duplicate copy of a story already shown
        stories.add(story)
        evidence.append({
            "sentence_id": row.sentence_id,
            "article_id": row.article_id,
            "story_id": row.story_id,
            "text": row.text[:EVIDENCE_TEXT_CHARS],
            "title": row.title,
            "publisher": row.publisher,
            "url": row.url,
            "probability": round(float(row.p_escalation), 4),
            "cues": row.cues or _explain(row.text),
            "model_version": row.model_version,
        })
        if len(evidence) >= limit:
            break
    return evidence


def _explain(text: str) -> list[dict[str, Any]]:
    """The lexicon cues in ``text``: computed here, for the few evidence sentences only,
    rather than for every flagged sentence in the classify stage (a hot path)."""
    from dataclasses import asdict

    from pipeline.lexicon import explain

    return [asdict(match) for match in explain(text)]


def monitoring_start(session: Session) -> dt.date | None:
    """The first day with signals: before it the series is unknown, not zero.

    Without this, the first days of a new store would be judged against a
    baseline of zero-filled days before any data and the count would alarm.
    """
    query = select(func.min(DailySignal.day)).where(DailySignal.scope == ALL)
    return session.execute(query).scalar_one_or_none()


def _window(day: dt.date, days: int) -> dt.date:
    return day - dt.timedelta(days=days - 1)


def detect_alerts(
    engine: Engine,
    settings: Settings,
    *,
    day: dt.date,
    rules: Mapping[str, AlertRule] | None = None,
) -> dict[str, int]:
    """Judge ``day`` for every watched scope; insert an alert row per firing scope.

    ``rules`` (default: :func:`parse_scope_rules`) names the watched scopes; when
    empty, every scope with a signal row on ``day`` is watched with the default
    rule. Reruns insert nothing new (unique (scope, day)).
    """
    rules = parse_scope_rules(settings) if rules is None else dict(rules)
    counts = {"scopes": 0, "count_alarms": 0, "alarms": 0, "alerts": 0}
    with session_scope(engine) as session:
        scopes = list(rules) or scopes_on(session, day)
        rows = []
        began = monitoring_start(session)
        for scope in scopes:
            rule = rules.get(scope) or default_rule(settings)
            start = min(max(_window(day, rule.history_days + 1), began or day), day)
            series = signal_series(session, scope, start=start, end=day)
            decision = evaluate(series, rule)
            counts["scopes"] += 1
            counts["count_alarms"] += int(decision.count.alarm)
            log.info("alerts %s %s: %s (count %s, bound %s, share p %s)", scope, day,
                     decision.reason, decision.count.observed, decision.count.upper_bound,
                     decision.share.p_value)
            if decision.fire:
                counts["alarms"] += 1
                evidence = evidence_for(session, scope, day)
                rows.append(alert_row(scope, day, rule, decision, evidence))
        counts["alerts"] = len(insert_ignore(session, Alert, rows))
    return counts


# --- reading alerts ---------------------------------------------------------------


@dataclass(frozen=True)
class AlertView:
    """An alert row as plain data (for the CLI, the e-mail and tests)."""

    id: int
    scope: str
    day: dt.date
    method: str
    observed: float
    baseline_mean: float | None
    threshold: float | None
    statistic: float | None
    p_value: float | None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    message_id: str = ""
    claimed_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    sent_at: dt.datetime | None = None

    @classmethod
    def of(cls, alert: Alert) -> AlertView:
        return cls(**{name: getattr(alert, name) for name in cls.__dataclass_fields__})


def list_alerts(
    engine: Engine,
    *,
    status: str | None = None,
    scope: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    limit: int | None = 100,
) -> list[AlertView]:
    """Alerts, newest day first, optionally filtered by status, scope and day range."""
    query = select(Alert).order_by(Alert.day.desc(), Alert.id.desc())
    if status is not None:
        query = query.where(Alert.status == status)
    if scope is not None:
        query = query.where(Alert.scope == scope)
    if since is not None:
        query = query.where(Alert.day >= since)
    if until is not None:
        query = query.where(Alert.day <= until)
    if limit is not None:
        query = query.limit(limit)
    with session_scope(engine) as session:
        return [AlertView.of(alert) for alert in session.execute(query).scalars()]


def get_alert(engine: Engine, alert_id: int) -> AlertView | None:
    with session_scope(engine) as session:
        alert = session.get(Alert, alert_id)
        return AlertView.of(alert) if alert is not None else None


# --- rendering (pure but for the lazy chart import) -------------------------------

SAFE_URL_CHARS = "!#$%&'()*+,/:;=?@[]~-._"


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) link (quotes and spaces percent-encoded), else None."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return None
    return quote(url, safe=SAFE_URL_CHARS)


def cue_labels(cues: Any) -> list[str]:
    """Readable names of the cues/features that flagged a sentence, whatever their JSON shape."""
    if cues is None:
        return []
    if isinstance(cues, str | int | float):
        return [str(cues)]
    if isinstance(cues, Mapping):  # e.g. a lexicon CueMatch: text, code, polarity, state...
        for key in ("cue", "phrase", "text", "feature", "name", "term"):
            if cues.get(key):
                extra = [f"CAMEO {cues['code']}"] if cues.get("code") else []
                extra += [str(cues[k]) for k in ("polarity", "state") if cues.get(k)]
                return [f"{cues[key]} ({', '.join(extra)})" if extra else str(cues[key])]
        return [f"{key}={value}" for key, value in cues.items()]
    labels: list[str] = []
    for cue in cues:
        labels.extend(cue_labels(cue))
    return labels


def scope_name(scope: str) -> str:
    """A readable name for a scope: ``all news`` or the country's name."""
    if scope == ALL:
        return "all news"
    from pipeline.geo import country_name

    try:
        return country_name(scope) or scope
    except LookupError:
        return scope


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def alert_subject(alert: AlertView) -> str:
    """E.g. ``Escalation spike: Belarus, 14 stories vs 3.1 expected, 2024-08-10``."""
    stories = "story" if alert.observed == 1 else "stories"
    expected = "n/a" if alert.baseline_mean is None else f"{alert.baseline_mean:.1f}"
    return (
        f"Escalation spike: {scope_name(alert.scope)}, {_number(alert.observed)} {stories} "
        f"vs {expected} expected, {alert.day.isoformat()}"
    )


@dataclass(frozen=True)
class ChartPoint:
    day: dt.date
    count: float
    threshold: float | None
    alarm: bool
    share: float = 0.0


def chart_points(series: Sequence[SignalPoint], rule: AlertRule, days: int) -> list[ChartPoint]:
    """The last ``days`` of ``series`` with each day's EARS threshold."""
    counts, _ = detect_series(series, rule)
    return [
        ChartPoint(day=r.date, count=r.observed, threshold=r.upper_bound, alarm=r.alarm,
                   share=point.escalation_share)
        for r, point in zip(counts[-days:], series[-days:], strict=True)
    ]


def render_chart(points: Sequence[ChartPoint], *, title: str) -> bytes:
    """A PNG line chart of the counts with the threshold, the last day marked."""
    from io import BytesIO

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7.5, 3.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    days = [point.day for point in points]
    axes.plot(days, [p.count for p in points], marker="o", markersize=3, color="#1f4e79",
              label="stories with escalation signals")
    axes.plot(days, [p.threshold if p.threshold is not None else float("nan") for p in points],
              linestyle="--", color="#c0392b", label="threshold")
    if points:
        axes.plot([points[-1].day], [points[-1].count], marker="o", markersize=8,
                  color="#c0392b", linestyle="none")
    axes.set_title(title, fontsize=10)
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _templates() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("pipeline", "templates"),
        # On for everything but the plain-text part.
        autoescape=select_autoescape(enabled_extensions=("html",),
                                     disabled_extensions=("txt",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _evidence_items(evidence: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "text": str(item.get("text") or ""),
            "title": str(item.get("title") or "(untitled)"),
            "publisher": str(item.get("publisher") or "unknown publisher"),
            "url": safe_url(item.get("url")),
            "probability": f"{float(item.get('probability') or 0.0):.2f}",
            "cues": cue_labels(item.get("cues")),
        }
        for item in evidence
    ]


def render_bodies(
    alert: AlertView, points: Sequence[ChartPoint], *, chart_cid: str | None
) -> tuple[str, str]:
    """The plain-text and HTML bodies of ``alert``."""
    last = points[-1] if points else None
    context = {
        "subject": alert_subject(alert),
        "scope_name": scope_name(alert.scope),
        "alert": alert,
        "observed": _number(alert.observed),
        "expected": "n/a" if alert.baseline_mean is None else f"{alert.baseline_mean:.1f}",
        "threshold": _number(alert.threshold, 2),
        "p_value": "n/a" if alert.p_value is None else f"{alert.p_value:.2g}",
        "evidence": _evidence_items(alert.evidence),
        "points": points,
        "chart_days": len(points),
        "chart_cid": chart_cid,
        "last": last,
        "last_share": last.share if last is not None else None,
    }
    environment = _templates()
    text = environment.get_template("alert.txt").render(context)
    html = environment.get_template("alert.html").render(context)
    return text, html


def build_message(
    alert: AlertView,
    points: Sequence[ChartPoint],
    *,
    sender: str,
    recipients: Sequence[str],
) -> EmailMessage:
    """multipart/alternative: text/plain, then multipart/related (text/html + image/png)."""
    chart = render_chart(points, title=f"{scope_name(alert.scope)}: stories with escalation "
                                      f"signals, last {len(points)} days") if points else None
    cid = make_msgid(domain=MESSAGE_ID_DOMAIN) if chart else None
    text, html = render_bodies(alert, points, chart_cid=cid[1:-1] if cid else None)
    message = EmailMessage()
    message["Subject"] = alert_subject(alert)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = alert.message_id
    message["Date"] = formatdate(usegmt=True)
    message["X-Escmon-Alert"] = f"{alert.scope} {alert.day.isoformat()}"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    if chart is not None and cid is not None:
        html_part = message.get_payload()[1]
        html_part.add_related(chart, "image", "png", cid=cid, filename="chart.png")
    return message


def rule_for_alert(alert: AlertView, settings: Settings) -> AlertRule:
    """The rule an alert was made with (its method label), for redrawing its chart."""
    method = "ears-c3" if alert.method.startswith("ears-c3") else "ears-c2"
    rule = parse_scope_rules(settings).get(alert.scope) or default_rule(settings)
    return replace(rule, method=method, require_share=alert.method.endswith("+share"))


def alert_chart(session: Session, alert: AlertView, settings: Settings) -> list[ChartPoint]:
    rule = rule_for_alert(alert, settings)
    days = max(settings.chart_days, 1)
    start = _window(alert.day, days + rule.history_days)
    start = min(max(start, monitoring_start(session) or alert.day), alert.day)
    series = signal_series(session, alert.scope, start=start, end=alert.day)
    return chart_points(series, rule, days)


def render_alert(
    engine: Engine, settings: Settings, alert_id: int, *, smtp: SmtpOverrides = None
) -> EmailMessage:
    """The e-mail for one alert, as it would be sent (for previews and the CLI)."""
    config = SmtpConfig.from_settings(settings, smtp)
    with session_scope(engine) as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise LookupError(f"no alert with id {alert_id}")
        view = AlertView.of(alert)
        points = alert_chart(session, view, settings)
    return build_message(view, points, sender=config.sender, recipients=config.recipients)


# --- SMTP configuration -------------------------------------------------------------


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


def connect(config: SmtpConfig) -> smtplib.SMTP:
    """An open, authenticated SMTP session."""
    if config.ssl:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host or "", config.port, timeout=config.timeout,
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


# --- the outbox ------------------------------------------------------------------

# Errors about one message; anything else means the server or connection is unusable.
MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                  smtplib.SMTPDataError)


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

    ``smtp`` overrides the mail settings (e.g. :func:`smtp_settings_from_airflow`).
    Without a host or recipients nothing is sent and ``not_configured`` is 1.
    After a connection-level failure the remaining alerts are left for the next
    run (``deferred``). A crash between sending and marking sent can resend the
    mail after the lease expires; it keeps its Message-ID, so clients dedupe it.
    """
    config = SmtpConfig.from_settings(settings, smtp)
    pending = _pending_ids(engine)
    counts = {"pending": len(pending), "sent": 0, "failed": 0, "skipped": 0, "deferred": 0,
              "not_configured": 0}
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
                client.send_message(message, from_addr=config.sender,
                                    to_addrs=list(config.recipients))
            except MESSAGE_ERRORS as exc:
                release(engine, alert_id, _describe(exc))
                counts["failed"] += 1
                continue
            except OSError as exc:  # refused, timed out, disconnected, auth failed, ...
                release(engine, alert_id, _describe(exc))
                counts["failed"] += 1
                counts["deferred"] = len(pending) - index - 1
                log.warning("alerts: SMTP %s:%s unusable: %s", config.host, config.port,
                            _describe(exc))
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
