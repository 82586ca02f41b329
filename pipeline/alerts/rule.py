"""The alert rule (pure) and its edges: signals in, alert rows out, rows read back."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import Engine, and_, func, select
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
from pipeline.tables import Alert, Article, DailySignal, Prediction, Sentence

log = logging.getLogger(__name__)

Method = Literal["ears-c2", "ears-c3"]
METHODS: tuple[str, ...] = ("ears-c2", "ears-c3")
EVIDENCE_LIMIT = 5
EVIDENCE_TEXT_CHARS = 600
DETECT_GUARD = 2  # C2/C3 leave out the two days before t
MESSAGE_ID_DOMAIN = "escmon"


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
        count.alarm and (share.alarm or not rule.require_share) and count.observed >= rule.min_count
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


def evidence_for(
    session: Session,
    scope: str,
    day: dt.date,
    *,
    limit: int = EVIDENCE_LIMIT,
    languages: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The day's most probable escalation sentences in ``scope``, one per story, in
    ``languages`` when given (``ESCMON_ALERT_LANGUAGES``), each with its language."""
    scored = scored_sentences([day], languages=languages)
    query = (
        select(
            scored.c.sentence_id,
            scored.c.article_id,
            scored.c.story_id,
            scored.c.p_escalation,
            scored.c.model_version,
            Sentence.text,
            Sentence.language,
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
        evidence.append(
            {
                "sentence_id": row.sentence_id,
                "article_id": row.article_id,
                "story_id": row.story_id,
                "text": row.text[:EVIDENCE_TEXT_CHARS],
                "language": row.language,
                "title": row.title,
                "publisher": row.publisher,
                "url": row.url,
                "probability": round(float(row.p_escalation), 4),
                # the lexicon is English: other languages' evidence has no cues
                "cues": row.cues or (_explain(row.text) if row.language == "en" else []),
                "model_version": row.model_version,
            }
        )
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
            log.info(
                "alerts %s %s: %s (count %s, bound %s, share p %s)",
                scope,
                day,
                decision.reason,
                decision.count.observed,
                decision.count.upper_bound,
                decision.share.p_value,
            )
            if decision.fire:
                counts["alarms"] += 1
                evidence = evidence_for(
                    session, scope, day, languages=settings.alert_languages or None
                )
                rows.append(alert_row(scope, day, rule, decision, evidence))
        counts["alerts"] = len(insert_ignore(session, Alert, rows))
    return counts


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
