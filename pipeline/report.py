"""The daily report: one self-contained HTML page per day, and a JSON twin of its data.

Three plain steps: :func:`gather_report` reads the store into plain dataclasses (per
scope the 30-day series with the alert threshold, the day's evidence per class and the
change against the baseline; feed health; each active model (English, and the one of
Russian, Ukrainian, Belarusian and Polish) with its test-set quality and class shares),
:func:`render_html` renders them with an autoescaped Jinja2 template and inline SVG
charts (matplotlib), and :func:`write_report` writes ``<day>.html`` and ``<day>.json``.

The page makes no request when opened: styles are inline, charts are inline SVG with
their text drawn as paths, there is no script, and a Content-Security-Policy forbids
loading anything. Feed text is untrusted: it is escaped by the template, and only
http(s) links are kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.orm import Session

from pipeline.alerts.render import (
    DASHED,
    DOTS,
    Line,
    cue_labels,
    plot_daily_counts,
    safe_url,
    scope_name,
)
from pipeline.alerts.rule import (
    AlertRule,
    default_rule,
    detect_series,
    monitoring_start,
    parse_scope_rules,
)
from pipeline.config import Settings
from pipeline.errors import EscmonError
from pipeline.language import MULTI_LANGUAGES, base_language, language_name
from pipeline.signals import (
    ALL,
    DEESCALATION_LABELS,
    ESCALATION,
    SignalPoint,
    country_match,
    parse_countries,
    scored_sentences,
    signal_series,
)
from pipeline.store import session_scope
from pipeline.tables import (
    Alert,
    Article,
    DailySignal,
    Feed,
    Label,
    Prediction,
    Sentence,
    as_utc,
)

REPORT_DAYS = 30
EVIDENCE_PER_CLASS = 5
EVIDENCE_TEXT_CHARS = 600
BASELINE_DAYS = 7  # the movers' baseline: the week before the day (EARS' baseline)
DRIFT_DAYS = 30  # the model's class shares today against the pooled shares of these days
DRIFT_FLAG_POINTS = 10.0  # a class share this many percentage points off is flagged
DRIFT_MIN_SENTENCES = 20  # ... when at least this many sentences were scored today
ENGLISH = "en"
CLASSES = ("escalation", "deescalation", "neutral")
EVIDENCE_CLASSES = ("escalation", "deescalation")


# --- the data -------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesDay:
    """One day of a scope's chart."""

    day: dt.date
    escalation_stories: int
    deescalation_stories: int
    tension_index: float
    sentences_scored: int
    threshold: float | None  # the alert rule's EARS upper bound for the day
    count_alarm: bool  # the story count crossed the threshold
    alerted: bool  # an alert row exists for the scope and day


@dataclass(frozen=True)
class Evidence:
    """One of the day's most probable sentences of a class (one per story)."""

    label: str
    text: str
    title: str
    publisher: str
    url: str | None  # http(s) only
    probability: float
    cues: list[str]
    language: str | None = None  # the sentence's code (else its article's); None: unknown


@dataclass(frozen=True)
class Mover:
    """A scope's day against its baseline (the mean of the previous days)."""

    scope: str
    name: str
    tension_today: float
    tension_baseline: float | None
    escalation_stories_today: int
    escalation_stories_baseline: float | None
    deescalation_stories_today: int
    deescalation_stories_baseline: float | None

    @property
    def tension_change(self) -> float | None:
        if self.tension_baseline is None:
            return None
        return round(self.tension_today - self.tension_baseline, 2)


@dataclass
class ScopeReport:
    scope: str
    name: str
    series: list[SeriesDay]
    evidence: dict[str, list[Evidence]]
    mover: Mover
    rule: str

    @property
    def today(self) -> SeriesDay | None:
        return self.series[-1] if self.series else None

    @property
    def has_data(self) -> bool:
        return any(point.sentences_scored for point in self.series)


@dataclass(frozen=True)
class FeedHealth:
    name: str
    enabled: bool
    status: str  # ok | failing | never fetched | disabled
    last_success: dt.datetime | None
    entries_today: int
    consecutive_failures: int
    backoff_until: dt.datetime | None
    last_error: str | None


@dataclass(frozen=True)
class TestScore:
    """A model's frozen test-set result (from its card), for one language or all of them."""

    language: str | None  # None: all the model's languages together
    n: int | None
    macro_f1: float | None
    macro_f1_ci: tuple[float, float] | None
    weakest_class: str | None  # lowest F1


@dataclass(frozen=True)
class ClassShares:
    """The share of each class among a model's scored sentences (of one language, or of
    all it reads): today against the DRIFT_DAYS days before."""

    language: str | None  # None: every language of the model
    sentences_today: int
    sentences_baseline: int
    share_today: dict[str, float]  # percent of the day's scored sentences
    share_baseline: dict[str, float]  # percent over the previous DRIFT_DAYS days
    drift_points: dict[str, float]  # today minus baseline, percentage points

    @property
    def drifted(self) -> bool:
        """A class share moved DRIFT_FLAG_POINTS or more, on enough sentences to mean it."""
        return (
            self.sentences_today >= DRIFT_MIN_SENTENCES
            and bool(self.sentences_baseline)
            and any(abs(value) >= DRIFT_FLAG_POINTS for value in self.drift_points.values())
        )


@dataclass(frozen=True)
class ModelSummary:
    """One active model: what scored the day, how good its card says it is, what it said."""

    name: str  # escalation | escalation-multi
    languages: list[str]
    version: str | None  # the model that scored most of the day's sentences (else the card's)
    card_version: str | None  # the model whose card the test-set figures come from
    card_found: bool
    test: TestScore | None  # English test set / all the multilingual test sets together
    test_balanced_macro_f1: float | None  # English: the class-balanced draw
    test_by_language: list[TestScore]  # the multilingual model: one per language
    shares: ClassShares
    shares_by_language: list[ClassShares]  # the multilingual model: languages with data

    @property
    def family(self) -> str:
        return ", ".join(language_name(code).split(" (")[0] for code in self.languages)

    @property
    def drifted(self) -> bool:
        return self.shares.drifted or any(item.drifted for item in self.shares_by_language)


@dataclass
class Report:
    day: dt.date
    days: int
    generated_at: dt.datetime
    scopes: list[ScopeReport]
    movers: list[Mover]
    feeds: list[FeedHealth]
    models: list[ModelSummary]
    notes: list[str] = field(default_factory=list)


# --- pure helpers -----------------------------------------------------------------------


def mover_of(scope: str, name: str, series: Sequence[SeriesDay]) -> Mover:
    """The last day of ``series`` against the mean of up to BASELINE_DAYS days before it."""
    today = series[-1] if series else None
    before = list(series[-1 - BASELINE_DAYS : -1]) if series else []

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 2) if values else None

    return Mover(
        scope=scope,
        name=name,
        tension_today=today.tension_index if today else 0.0,
        tension_baseline=mean([p.tension_index for p in before]),
        escalation_stories_today=today.escalation_stories if today else 0,
        escalation_stories_baseline=mean([float(p.escalation_stories) for p in before]),
        deescalation_stories_today=today.deescalation_stories if today else 0,
        deescalation_stories_baseline=mean([float(p.deescalation_stories) for p in before]),
    )


def biggest_movers(movers: Sequence[Mover], limit: int = 10) -> list[Mover]:
    """Scopes ordered by how far their tension index moved from its baseline."""
    known = [m for m in movers if m.tension_change is not None]
    return sorted(known, key=lambda m: (-abs(m.tension_change or 0.0), m.scope))[:limit]


def class_shares(counts: Mapping[str, int], total: int) -> dict[str, float]:
    """Percent of ``total`` per class (neutral: the rest)."""
    if not total:
        return dict.fromkeys(CLASSES, 0.0)
    escalation = counts.get("escalation", 0)
    deescalation = counts.get("deescalation", 0)
    neutral = total - escalation - deescalation
    return {
        "escalation": round(100.0 * escalation / total, 2),
        "deescalation": round(100.0 * deescalation / total, 2),
        "neutral": round(100.0 * neutral / total, 2),
    }


def _window_start(day: dt.date, days: int) -> dt.date:
    return day - dt.timedelta(days=days - 1)


# --- reading the store -------------------------------------------------------------------


def report_scopes(session: Session, start: dt.date, end: dt.date) -> list[str]:
    """``all``, then every country scope with scored sentences between ``start`` and ``end``."""
    query = (
        select(DailySignal.scope)
        .where(
            DailySignal.day >= start,
            DailySignal.day <= end,
            DailySignal.sentences_scored > 0,
            DailySignal.scope != ALL,
        )
        .distinct()
    )
    countries = sorted(set(session.execute(query).scalars()), key=lambda s: (scope_name(s), s))
    return [ALL, *countries]


def deescalation_stories(
    session: Session, start: dt.date, end: dt.date, languages: Sequence[str] | None = None
) -> dict[tuple[str, dt.date], int]:
    """Distinct stories with a de-escalation sentence, per (scope, day): the signals table
    counts escalation stories only."""
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    if not days:
        return {}
    scored = scored_sentences(days, languages=languages)
    query = (
        select(scored.c.day, scored.c.story_id, scored.c.article_id, scored.c.countries)
        .where(scored.c.label.in_(DEESCALATION_LABELS))
        .distinct()
    )
    stories: dict[tuple[str, dt.date], set[Any]] = {}
    for row in session.execute(query):
        story = row.story_id if row.story_id is not None else ("article", row.article_id)
        for scope in [ALL, *parse_countries(row.countries)]:
            stories.setdefault((scope, row.day), set()).add(story)
    return {key: len(value) for key, value in stories.items()}


def alerted_days(session: Session, start: dt.date, end: dt.date) -> set[tuple[str, dt.date]]:
    query = select(Alert.scope, Alert.day).where(Alert.day >= start, Alert.day <= end)
    return {(row.scope, row.day) for row in session.execute(query)}


def scope_series(
    session: Session,
    scope: str,
    day: dt.date,
    days: int,
    rule: AlertRule,
    *,
    began: dt.date | None,
    deescalation: Mapping[tuple[str, dt.date], int],
    alerted: set[tuple[str, dt.date]],
) -> list[SeriesDay]:
    """The last ``days`` days of ``scope`` up to ``day`` (from the first day with signals),
    with each day's threshold under ``rule``."""
    first = max(_window_start(day, days), began or day)
    first = min(first, day)
    history = min(max(first - dt.timedelta(days=rule.history_days), began or first), first)
    series: list[SignalPoint] = signal_series(session, scope, start=history, end=day)
    counts, _ = detect_series(series, rule)
    shown = (day - first).days + 1
    return [
        SeriesDay(
            day=point.day,
            escalation_stories=point.escalation_stories,
            deescalation_stories=deescalation.get((scope, point.day), 0),
            tension_index=round(point.tension_index, 2),
            sentences_scored=point.sentences_scored,
            threshold=None
            if result.upper_bound is None or math.isnan(result.upper_bound)
            else round(float(result.upper_bound), 3),
            count_alarm=bool(result.alarm),
            alerted=(scope, point.day) in alerted,
        )
        for point, result in zip(series[-shown:], counts[-shown:], strict=True)
    ]


_PROBABILITY = {"escalation": Prediction.p_escalation, "deescalation": Prediction.p_deescalation}


def top_evidence(
    session: Session,
    scope: str,
    day: dt.date,
    label: str,
    *,
    limit: int = EVIDENCE_PER_CLASS,
    languages: Sequence[str] | None = None,
) -> list[Evidence]:
    """The day's most probable ``label`` sentences in ``scope``, one per story."""
    scored = scored_sentences([day], languages=languages)
    probability = _PROBABILITY[label]
    labels = DEESCALATION_LABELS if label == "deescalation" else (ESCALATION,)
    query = (
        select(
            scored.c.article_id,
            scored.c.story_id,
            probability.label("probability"),
            Sentence.text,
            Sentence.language,
            Article.language.label("article_language"),
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
        .where(scored.c.label.in_(labels))
        .order_by(probability.desc(), scored.c.sentence_id)
        .limit(limit * 20)
    )
    if scope != ALL:
        query = query.where(country_match(scored.c.countries, scope))
    found: list[Evidence] = []
    stories: set[Any] = set()
    for row in session.execute(query):
        story = row.story_id if row.story_id is not None else ("article", row.article_id)
        if story in stories:
            continue  # a near-duplicate copy of a story already shown
        stories.add(story)
        language = base_language(row.language or row.article_language)
        found.append(
            Evidence(
                label=label,
                text=row.text[:EVIDENCE_TEXT_CHARS],
                title=row.title or "(untitled)",
                publisher=row.publisher or "unknown publisher",
                url=safe_url(row.url),
                probability=round(float(row.probability), 3),
                # the lexicon is English: other languages' evidence has no cues
                cues=cue_labels(row.cues)
                or (_explain(row.text) if language in (None, ENGLISH) else []),
                language=language,
            )
        )
        if len(found) >= limit:
            break
    return found


def _explain(text: str) -> list[str]:
    """Cues from the lexicon for the few sentences shown (the classify stage stores none)."""
    from dataclasses import asdict as as_dict

    from pipeline.lexicon import explain

    return cue_labels([as_dict(match) for match in explain(text)])


def feed_health(session: Session, day: dt.date) -> list[FeedHealth]:
    """Every RSS/Atom feed: failing ones first, then by name."""
    entries = dict(
        session.execute(
            select(Article.feed_id, func.count())
            .where(Article.day == day)
            .group_by(Article.feed_id)
        ).all()
    )
    feeds = []
    for feed in session.execute(select(Feed).where(Feed.kind != "seed")).scalars():
        if not feed.enabled:
            status = "disabled"
        elif feed.consecutive_failures or feed.last_error:
            status = "failing"
        elif feed.last_fetched_at is None:
            status = "never fetched"
        else:
            status = "ok"
        feeds.append(
            FeedHealth(
                name=feed.name,
                enabled=feed.enabled,
                status=status,
                last_success=as_utc(feed.last_fetched_at),
                entries_today=int(entries.get(feed.id, 0)),
                consecutive_failures=feed.consecutive_failures,
                backoff_until=as_utc(feed.next_attempt_at),
                last_error=feed.last_error,
            )
        )
    order = {"failing": 0, "never fetched": 1, "ok": 2, "disabled": 3}
    return sorted(feeds, key=lambda f: (order[f.status], f.name))


# (language code, class, model version, day) -> scored sentences
ClassCounts = Counter[tuple[str, str, str, dt.date]]


def model_class_counts(session: Session, day: dt.date) -> ClassCounts:
    """Scored sentences of ``day`` and the DRIFT_DAYS before it, by language (the
    sentence's, else its article's), class and model version; every scored language,
    whatever ESCMON_ALERT_LANGUAGES keeps in the signals."""
    days = [day - dt.timedelta(days=n) for n in range(DRIFT_DAYS + 1)]
    scored = scored_sentences(days)
    keys = (
        Sentence.language,
        Article.language.label("article_language"),
        scored.c.label,
        scored.c.model_version,
        scored.c.day,
    )
    query = (
        select(*keys, func.count().label("sentences"))
        .join(Sentence, Sentence.id == scored.c.sentence_id)
        .join(Article, Article.id == scored.c.article_id)
        .group_by(*keys)
    )
    counts: ClassCounts = Counter()
    for row in session.execute(query):
        language = base_language(row.language or row.article_language) or ""
        counts[(language, row.label, row.model_version, row.day)] += int(row.sentences)
    return counts


def shares_of(
    counts: ClassCounts, day: dt.date, languages: Sequence[str], language: str | None = None
) -> ClassShares:
    """The class shares of ``languages``' sentences on ``day`` against the days before."""
    today: Counter[str] = Counter()
    before: Counter[str] = Counter()
    for (code, label, _version, when), number in counts.items():
        if code in languages:
            (today if when == day else before)[label] += number
    today_total, before_total = sum(today.values()), sum(before.values())
    share_today = class_shares(_by_class(today), today_total)
    share_baseline = class_shares(_by_class(before), before_total)
    return ClassShares(
        language=language,
        sentences_today=today_total,
        sentences_baseline=before_total,
        share_today=share_today,
        share_baseline=share_baseline,
        drift_points={
            lab: round(share_today[lab] - share_baseline[lab], 2) if before_total else 0.0
            for lab in CLASSES
        },
    )


def _by_class(counts: Mapping[str, int]) -> dict[str, int]:
    """Escalation and de-escalation counts (the labels the signals count as each)."""
    return {
        "escalation": counts.get(ESCALATION, 0),
        "deescalation": sum(counts.get(lab, 0) for lab in DEESCALATION_LABELS),
    }


def _day_version(counts: ClassCounts, day: dt.date, languages: Sequence[str]) -> str | None:
    """The version that scored most of the day's sentences in ``languages``."""
    versions: Counter[str] = Counter()
    for (code, _label, version, when), number in counts.items():
        if when == day and code in languages:
            versions[version] += number
    return versions.most_common(1)[0][0] if versions else None


def find_card(models_dirs: Sequence[Path], name: str, version: str | None) -> dict[str, Any] | None:
    """The card of model ``version`` (or, without one, the newest card of ``name``) in the
    model folders (the shipped one, then the data folder's, as ``Settings.model_dirs``).

    Reads the JSON cards only: the report never loads a model file.
    """
    stem = re.compile(rf"{re.escape(name)}-\d+\.\d+-[0-9a-f]{{10}}\.card\.json")
    cards: list[dict[str, Any]] = []
    paths = [path for folder in models_dirs for path in sorted(folder.glob(f"{name}-*.card.json"))]
    for path in paths:
        if not stem.fullmatch(path.name):
            continue  # another model whose name starts the same (escalation-multi-...)
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(card, dict):
            cards.append(card)
    if version is not None:
        return next((card for card in cards if card.get("version") == version), None)
    return max(cards, key=lambda card: str(card.get("trained_at", "")), default=None)


def test_score(result: Mapping[str, Any] | None, language: str | None) -> TestScore | None:
    """A card's test-set entry (``macro_f1``, ``n``, ``macro_f1_95ci``, ``per_class``)."""
    if not result:
        return None
    per_class = result.get("per_class") or {}
    interval = result.get("macro_f1_95ci")
    return TestScore(
        language=language,
        n=result.get("n"),
        macro_f1=result.get("macro_f1"),
        macro_f1_ci=(interval[0], interval[1]) if interval else None,
        weakest_class=min(per_class, key=lambda lab: per_class[lab]["f1"]) if per_class else None,
    )


def model_summary(
    models_dirs: Sequence[Path],
    name: str,
    languages: Sequence[str],
    counts: ClassCounts,
    day: dt.date,
) -> ModelSummary:
    """Model ``name`` (reading ``languages``): the day's version, its card's test-set
    quality (English: the English test set and its class-balanced draw; the multilingual
    model: all its test sets and each language's), and its class shares and drift."""
    version = _day_version(counts, day, languages)
    card = find_card(models_dirs, name, version)
    if card is None:  # the day's model is gone, or was another's: the active card
        card = find_card(models_dirs, name, None)
    test_set = (card or {}).get("test_set") or {}
    by_language = test_set.get("by_language") or {}
    several = len(languages) > 1
    return ModelSummary(
        name=name,
        languages=list(languages),
        version=version or (card.get("version") if card is not None else None),
        card_version=card.get("version") if card is not None else None,
        card_found=card is not None,
        test=test_score(test_set.get("english"), ENGLISH) or test_score(test_set.get("all"), None),
        test_balanced_macro_f1=(test_set.get("english_balanced") or {}).get("macro_f1"),
        test_by_language=[
            score
            for code in languages
            if (score := test_score(by_language.get(code), code)) is not None
        ],
        shares=shares_of(counts, day, languages),
        shares_by_language=[
            shares_of(counts, day, [code], code)
            for code in languages
            if several and any(key[0] == code for key in counts)
        ],
    )


def active_models(session: Session, settings: Settings, day: dt.date) -> list[ModelSummary]:
    """The English model, then the multilingual one (when configured and it has a card or
    scored sentences in the window)."""
    counts = model_class_counts(session, day)
    models_dir = [Path(folder) for folder in settings.model_dirs]
    models = [model_summary(models_dir, settings.model_name, [ENGLISH], counts, day)]
    if settings.multi_model_name:
        multi = model_summary(models_dir, settings.multi_model_name, MULTI_LANGUAGES, counts, day)
        if multi.card_found or multi.shares.sentences_today or multi.shares.sentences_baseline:
            models.append(multi)
    return models


def scope_rule(settings: Settings, scope: str) -> AlertRule:
    return parse_scope_rules(settings).get(scope) or default_rule(settings)


def gather_report(
    engine: Engine, settings: Settings, *, day: dt.date, days: int = REPORT_DAYS
) -> Report:
    """Everything the report shows for ``day``, as plain data."""
    if days < 1:
        raise ValueError("days must be at least 1")
    start = _window_start(day, days)
    with session_scope(engine) as session:
        began = monitoring_start(session)
        # The languages the signals count (ESCMON_ALERT_LANGUAGES; empty: all scored ones).
        languages = settings.alert_languages or None
        deescalation = deescalation_stories(
            session, max(start, began or start), day, languages=languages
        )
        alerted = alerted_days(session, start, day)
        scopes = []
        for scope in report_scopes(session, start, day):
            rule = scope_rule(settings, scope)
            series = scope_series(
                session,
                scope,
                day,
                days,
                rule,
                began=began,
                deescalation=deescalation,
                alerted=alerted,
            )
            name = scope_name(scope)
            scopes.append(
                ScopeReport(
                    scope=scope,
                    name=name,
                    series=series,
                    evidence={
                        label: top_evidence(session, scope, day, label, languages=languages)
                        for label in EVIDENCE_CLASSES
                    },
                    mover=mover_of(scope, name, series),
                    rule=f"{rule.label}, at least {rule.min_count} stories",
                )
            )
        feeds = feed_health(session, day)
        models = active_models(session, settings, day)
    notes = []
    if began is None or began > day:
        notes.append("No signals up to this day yet: run `escmon run` for it first.")
    return Report(
        day=day,
        days=days,
        generated_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        scopes=scopes,
        movers=biggest_movers([scope.mover for scope in scopes]),
        feeds=feeds,
        models=models,
        notes=notes,
    )


# --- rendering -----------------------------------------------------------------------------

_SVG_SIZE = re.compile(r'\s(width|height)="[^"]*"')
_ALERTED_MARKER = {
    "marker": "D",
    "markersize": 9,
    "linestyle": "none",
    "markerfacecolor": "none",
    "markeredgecolor": "#b03a2e",
    "markeredgewidth": 2,
}


def render_chart(scope: ScopeReport) -> str:
    """Inline SVG: escalation and de-escalation stories with the threshold and alerted
    days above, the tension index below. Text is drawn as paths (no font is fetched)."""
    from io import StringIO

    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    points = scope.series
    days: Any = [p.day for p in points]  # matplotlib plots dates; its stubs say floats
    lines = [
        Line(days, [p.escalation_stories for p in points], "#b03a2e", "escalation stories", DOTS),
        Line(
            days, [p.deescalation_stories for p in points], "#1e8449", "de-escalation stories", DOTS
        ),
        Line(days, [p.threshold for p in points], "#555555", "alert threshold", DASHED),
    ]
    alerted = [p for p in points if p.alerted]
    if alerted:
        lines.append(
            Line(
                [p.day for p in alerted],
                [p.escalation_stories for p in alerted],
                "#b03a2e",
                "alerted",
                _ALERTED_MARKER,
            )
        )
    # A salt per scope keeps the ids in each SVG distinct within one page.
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": f"escmon-{scope.scope}"}):
        figure = Figure(figsize=(7.5, 4.2), dpi=100)
        FigureCanvasSVG(figure)
        top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
        title = f"{scope.name}: stories per day, last {len(points)} days"
        plot_daily_counts(top, lines, title=title, legend_columns=2)
        bottom.bar(
            days,
            [p.tension_index for p in points],
            color=["#b03a2e" if p.tension_index > 0 else "#1e8449" for p in points],
            width=0.8,
        )
        bottom.axhline(0, color="#333333", linewidth=0.8)
        bottom.set_ylabel("tension", fontsize=8)
        bottom.grid(alpha=0.3)
        figure.autofmt_xdate()
        figure.tight_layout()
        buffer = StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # no XML declaration or DOCTYPE inside HTML
    head_end = svg.index(">")
    head = _SVG_SIZE.sub("", svg[:head_end])  # the CSS sizes it to the page width
    label = f"Chart of {scope.name}: escalation and de-escalation stories and tension index"
    head += f' role="img" aria-label="{_attribute(label)}" class="chart"'
    return head + svg[head_end:]


def _attribute(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    environment = Environment(
        loader=PackageLoader("pipeline", "templates"),
        autoescape=True,  # feed text is untrusted: everything is escaped
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["number"] = _number
    environment.filters["signed"] = _signed
    environment.filters["when"] = _when
    environment.filters["language"] = language_name
    return environment


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}"


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_html(report: Report) -> str:
    """The self-contained page (charts for the scopes with data)."""
    from markupsafe import Markup

    charts = {
        scope.scope: Markup(render_chart(scope))  # our SVG: numbers, and text as paths
        for scope in report.scopes
        if scope.has_data
    }
    return (
        _environment()
        .get_template("report.html")
        .render(report=report, charts=charts, drift_days=DRIFT_DAYS)
    )


def report_data(report: Report) -> dict[str, Any]:
    """The JSON twin: the same data as the page, without the charts."""

    def plain(value: Any) -> Any:
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    data = plain(asdict(report))
    for entry, scope in zip(data["scopes"], report.scopes, strict=True):
        entry["mover"]["tension_change"] = scope.mover.tension_change
        entry["has_data"] = scope.has_data
    for entry, mover in zip(data["movers"], report.movers, strict=True):
        entry["tension_change"] = mover.tension_change
    for entry, model in zip(data["models"], report.models, strict=True):
        entry["family"] = model.family
        entry["drifted"] = model.drifted
        entry["shares"]["drifted"] = model.shares.drifted
        for item, shares in zip(entry["shares_by_language"], model.shares_by_language, strict=True):
            item["drifted"] = shares.drifted
    return data


class ReportError(EscmonError, OSError):
    """The report could not be written; the message names the folder."""


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    json: Path
    scopes: int
    charts: int


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_report(
    engine: Engine,
    settings: Settings,
    *,
    day: dt.date,
    days: int = REPORT_DAYS,
    out_dir: Path | None = None,
    inputs: str | None = None,
) -> ReportFiles:
    """Write ``<day>.html`` and ``<day>.json`` into ``out_dir`` (default ``reports_dir``).

    The JSON twin records ``inputs`` (:func:`report_inputs`; computed when not given), which
    lets the daily job skip an unchanged report."""
    if inputs is None:
        inputs = report_inputs(engine, settings, day=day, days=days)
    report = gather_report(engine, settings, day=day, days=days)
    folder = Path(out_dir if out_dir is not None else settings.reports_dir)
    html_path = folder / f"{day.isoformat()}.html"
    json_path = folder / f"{day.isoformat()}.json"
    html = render_html(report)
    data = json.dumps({**report_data(report), "inputs": inputs}, indent=2, ensure_ascii=False)
    data += "\n"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(html_path, html)
        _write_atomic(json_path, data)
    except OSError as exc:
        raise ReportError(
            f"cannot write the report into {folder} ({exc.strerror or exc}); "
            "set ESCMON_REPORTS_DIR or --out to a writable folder"
        ) from exc
    charts = sum(1 for scope in report.scopes if scope.has_data)
    return ReportFiles(html=html_path, json=json_path, scopes=len(report.scopes), charts=charts)


# Bumped when the report's content changes for the same data, so a rerun rewrites it.
REPORT_FORMAT = 2


def report_inputs(engine: Engine, settings: Settings, *, day: dt.date, days: int) -> str:
    """A digest of everything the report reads, from cheap aggregates: the size and newest
    row of each table it shows, the alerts' and feeds' states, the model cards and the
    settings it applies. Equal digests mean an equal report (up to ``generated_at``)."""
    parts: list[Any] = [REPORT_FORMAT, day.isoformat(), days]
    with session_scope(engine) as session:
        for table in (Article, Sentence, Prediction, DailySignal, Label):
            parts.append(list(session.execute(select(func.count(), func.max(table.id))).one()))
        parts.append(
            [
                list(row)
                for row in session.execute(select(Alert.id, Alert.status).order_by(Alert.id))
            ]
        )
        feed_state = select(
            Feed.name, Feed.enabled, Feed.last_status, Feed.last_error, Feed.consecutive_failures
        ).order_by(Feed.name)
        parts.append([list(row) for row in session.execute(feed_state)])
    names = [settings.model_name, settings.multi_model_name]
    parts.append(
        sorted(
            (path.name, path.stat().st_mtime_ns)
            for folder in settings.model_dirs
            for name in names
            if name
            for path in Path(folder).glob(f"{name}-*.card.json")
        )
    )
    parts.append(repr((sorted(parse_scope_rules(settings).items()), default_rule(settings))))
    parts.append(sorted(settings.alert_languages or ()))
    text = json.dumps(parts, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stored_inputs(json_path: Path) -> str | None:
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("inputs") if isinstance(data, dict) else None


def report_stage(engine: Engine, settings: Settings, *, day: dt.date) -> dict[str, int]:
    """The daily job's ``report`` stage: write the day's report; counts for the runs table.

    A rerun over unchanged data leaves the files as they are (``reports: 0``): rendering a
    chart per scope takes minutes on a large store, and a rerun must change nothing.
    """
    inputs = report_inputs(engine, settings, day=day, days=REPORT_DAYS)
    folder = Path(settings.reports_dir)
    json_path, html_path = folder / f"{day.isoformat()}.json", folder / f"{day.isoformat()}.html"
    if html_path.is_file() and _stored_inputs(json_path) == inputs:
        return {"scopes": 0, "charts": 0, "reports": 0}
    files = write_report(engine, settings, day=day, inputs=inputs)
    return {"scopes": files.scopes, "charts": files.charts, "reports": 1}
