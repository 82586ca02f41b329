"""Daily signals: per scope (``all`` or a country code) and day, what the classifier saw.

Scope rule: a sentence belongs to country scope ``C`` if the sentence names
``C``; a sentence that names no country inherits its article's countries. Every
counted sentence is also in scope ``all``. So a Belarus-only article's
sentence "Ukraine shelled the border" counts for UKR (not BLR), while its
context-free "Troops moved closer" counts for BLR.

Every sentence with a prediction counts, in whatever language it was scored (English,
Russian, Ukrainian, Belarusian, Polish), unless ``languages`` limits them
(``ESCMON_ALERT_LANGUAGES``). Each sentence counts once, with its newest prediction (latest
``created_at``, then highest id), unless a ``model_version`` is given.

The database does the heavy part: one GROUP BY turns sentences into one row per
(day, article, countries, model version); :func:`signals_from_groups` (pure)
spreads those over scopes and counts distinct articles and stories. Near-duplicate
copies share a ``story_id`` and so count once as stories.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, case, delete, func, literal, select, tuple_
from sqlalchemy.orm import Session

from pipeline.gctools import collector_paused
from pipeline.store import session_scope, upsert
from pipeline.tables import Article, DailySignal, Prediction, Sentence, utcnow

ALL = "all"
ESCALATION = "escalation"
DEESCALATION_LABELS = ("deescalation", "de-escalation")

SIGNAL_COLUMNS = (
    "articles",
    "stories",
    "sentences_scored",
    "escalation_count",
    "deescalation_count",
    "escalation_prob_sum",
    "deescalation_prob_sum",
    "escalation_stories",
    "escalation_share",
    "tension_index",
)


# --- pure part ------------------------------------------------------------------


def parse_countries(value: str | None) -> tuple[str, ...]:
    """``"BLR, ukr,,"`` -> ``("BLR", "UKR")`` (upper case, no blanks, no repeats)."""
    if not value:
        return ()
    seen: dict[str, None] = {}
    for part in value.split(","):
        code = part.strip().upper()
        if code:
            seen[code] = None
    return tuple(seen)


def sentence_scopes(sentence_countries: str | None, article_countries: str | None) -> list[str]:
    """The scopes a sentence counts in: ``all``, plus its countries or else its article's."""
    codes = parse_countries(sentence_countries) or parse_countries(article_countries)
    return [ALL, *codes]


@dataclass(frozen=True)
class SentenceRow:
    """One scored sentence, as the signals need it."""

    day: dt.date
    article_id: int
    story_id: int | None
    sentence_countries: str
    article_countries: str
    label: str
    p_escalation: float
    p_deescalation: float
    model_version: str = ""


@dataclass(frozen=True)
class GroupRow:
    """Scored sentences of one article that share their effective countries and model."""

    day: dt.date
    article_id: int
    story_id: int | None
    countries: str  # the effective countries (sentence's, else article's)
    model_version: str
    scored: int
    escalation: int
    deescalation: int
    p_escalation_sum: float
    p_deescalation_sum: float


def group_of(row: SentenceRow) -> GroupRow:
    """A single sentence as a group of one."""
    return GroupRow(
        day=row.day,
        article_id=row.article_id,
        story_id=row.story_id,
        countries=",".join(sentence_scopes(row.sentence_countries, row.article_countries)[1:]),
        model_version=row.model_version,
        scored=1,
        escalation=int(row.label == ESCALATION),
        deescalation=int(row.label in DEESCALATION_LABELS),
        p_escalation_sum=row.p_escalation,
        p_deescalation_sum=row.p_deescalation,
    )


@dataclass
class _Tally:
    articles: set[int] = field(default_factory=set)
    stories: set[Any] = field(default_factory=set)
    escalation_stories: set[Any] = field(default_factory=set)
    scored: int = 0
    escalation: int = 0
    deescalation: int = 0
    p_escalation_sum: float = 0.0
    p_deescalation_sum: float = 0.0
    versions: Counter[str] = field(default_factory=Counter)

    def add(self, group: GroupRow) -> None:
        story = group.story_id if group.story_id is not None else ("article", group.article_id)
        self.articles.add(group.article_id)
        self.stories.add(story)
        if group.escalation:
            self.escalation_stories.add(story)
        self.scored += group.scored
        self.escalation += group.escalation
        self.deescalation += group.deescalation
        self.p_escalation_sum += group.p_escalation_sum
        self.p_deescalation_sum += group.p_deescalation_sum
        self.versions[group.model_version] += group.scored


def _row(scope: str, day: dt.date, tally: _Tally, model_version: str | None) -> dict[str, Any]:
    scored = tally.scored
    # The model used by most of the day's sentences (mixed only around a retrain).
    version = model_version or (tally.versions.most_common(1)[0][0] if tally.versions else "")
    return {
        "scope": scope,
        "day": day,
        "model_version": version,
        "articles": len(tally.articles),
        "stories": len(tally.stories),
        "sentences_scored": scored,
        "escalation_count": tally.escalation,
        "deescalation_count": tally.deescalation,
        "escalation_prob_sum": round(tally.p_escalation_sum, 6),
        "deescalation_prob_sum": round(tally.p_deescalation_sum, 6),
        "escalation_stories": len(tally.escalation_stories),
        "escalation_share": tally.escalation / scored if scored else 0.0,
        "tension_index": tension_index(tally.escalation, tally.deescalation, scored),
    }


def tension_index(escalation: int, deescalation: int, scored: int) -> float:
    """Escalation minus de-escalation sentences per 100 scored sentences."""
    return 100.0 * (escalation - deescalation) / scored if scored else 0.0


def signals_from_groups(
    groups: Iterable[GroupRow],
    *,
    days: Iterable[dt.date] = (),
    model_version: str | None = None,
) -> list[dict[str, Any]]:
    """Signal rows (``DailySignal`` columns) for every scope and day seen in ``groups``.

    Each day in ``days`` gets an ``all`` row even with nothing scored, so a quiet
    day reads as zero rather than missing.
    """
    tallies: dict[tuple[str, dt.date], _Tally] = {}
    for day in days:
        tallies.setdefault((ALL, day), _Tally())
    for group in groups:
        for scope in [ALL, *parse_countries(group.countries)]:
            tallies.setdefault((scope, group.day), _Tally()).add(group)
    ordered = sorted(tallies.items(), key=lambda item: (item[0][1], item[0][0] != ALL, item[0][0]))
    return [_row(scope, day, tally, model_version) for (scope, day), tally in ordered]


def signals_from_sentences(
    rows: Iterable[SentenceRow],
    *,
    days: Iterable[dt.date] = (),
    model_version: str | None = None,
) -> list[dict[str, Any]]:
    """Signal rows from per-sentence rows (the reference for what the SQL path computes)."""
    return signals_from_groups(
        (group_of(row) for row in rows), days=days, model_version=model_version
    )


# --- database edge ------------------------------------------------------------


def effective_countries() -> Any:
    """SQL expression: the sentence's countries, else its article's."""
    sentence = func.coalesce(Sentence.countries, "")
    return case((sentence != "", sentence), else_=func.coalesce(Article.countries, ""))


def scored_sentences(
    days: Sequence[dt.date],
    model_version: str | None = None,
    languages: Sequence[str] | None = None,
) -> Any:
    """A subquery: one row per scored sentence of ``days`` (in ``languages`` if given),
    with its chosen prediction.

    Columns: sentence_id, article_id, story_id, day, countries, sentence_countries,
    label, p_escalation, p_deescalation, cues, model_version, created_at.
    """
    columns = [
        Sentence.id.label("sentence_id"),
        Sentence.article_id.label("article_id"),
        Article.story_id.label("story_id"),
        Article.day.label("day"),
        effective_countries().label("countries"),
        Prediction.label.label("label"),
        Prediction.p_escalation.label("p_escalation"),
        Prediction.p_deescalation.label("p_deescalation"),
        Prediction.model_version.label("model_version"),
    ]
    joined = (
        select(*columns)
        .join_from(Prediction, Sentence, Prediction.sentence_id == Sentence.id)
        .join(Article, Sentence.article_id == Article.id)
        .where(Article.day.in_(list(days)))
    )
    if languages:
        joined = joined.where(Sentence.language.in_(list(languages)))
    if model_version is not None:
        return joined.where(Prediction.model_version == model_version).subquery("scored")
    newest_first = func.row_number().over(
        partition_by=Prediction.sentence_id,
        order_by=(Prediction.created_at.desc(), Prediction.id.desc()),
    )
    ranked = joined.add_columns(newest_first.label("rank")).subquery("ranked")
    return (
        select(*[c for c in ranked.c if c.name != "rank"])
        .where(ranked.c.rank == 1)
        .subquery("scored")
    )


def _group_query(
    days: Sequence[dt.date], model_version: str | None, languages: Sequence[str] | None
) -> Any:
    scored = scored_sentences(days, model_version, languages)
    is_escalation = case((scored.c.label == ESCALATION, 1), else_=0)
    is_deescalation = case((scored.c.label.in_(DEESCALATION_LABELS), 1), else_=0)
    keys = (
        scored.c.day,
        scored.c.article_id,
        scored.c.story_id,
        scored.c.countries,
        scored.c.model_version,
    )
    return select(
        *keys,
        func.count().label("scored"),
        func.sum(is_escalation).label("escalation"),
        func.sum(is_deescalation).label("deescalation"),
        func.sum(scored.c.p_escalation).label("p_escalation_sum"),
        func.sum(scored.c.p_deescalation).label("p_deescalation_sum"),
    ).group_by(*keys)


def load_groups(
    session: Session,
    days: Sequence[dt.date],
    model_version: str | None = None,
    languages: Sequence[str] | None = None,
) -> list[GroupRow]:
    """The per-(day, article, countries, model) aggregates of ``days``, from one GROUP BY."""
    if not days:
        return []
    return [
        GroupRow(
            day=row.day,
            article_id=row.article_id,
            story_id=row.story_id,
            countries=row.countries or "",
            model_version=row.model_version,
            scored=int(row.scored),
            escalation=int(row.escalation or 0),
            deescalation=int(row.deescalation or 0),
            p_escalation_sum=float(row.p_escalation_sum or 0.0),
            p_deescalation_sum=float(row.p_deescalation_sum or 0.0),
        )
        for row in session.execute(_group_query(days, model_version, languages))
    ]


def up_to_date_days(session: Session, days: Sequence[dt.date]) -> set[dt.date]:
    """Days whose signals were computed after the newest prediction of their articles."""
    newer_prediction = (
        select(Prediction.id)
        .join(Sentence, Sentence.id == Prediction.sentence_id)
        .join(Article, Article.id == Sentence.article_id)
        .where(Article.day == DailySignal.day, Prediction.created_at > DailySignal.computed_at)
    )
    query = select(DailySignal.day).where(
        DailySignal.scope == ALL, DailySignal.day.in_(days), ~newer_prediction.exists()
    )
    return set(session.execute(query).scalars())


@collector_paused()  # millions of short-lived rows, no cycles among them
def compute_signals(
    engine: Engine,
    *,
    days: Sequence[dt.date],
    model_version: str | None = None,
    only_changed: bool = False,
    languages: Sequence[str] | None = None,
) -> dict[str, int]:
    """Recompute the signals of ``days`` (upsert on (scope, day)); rerunning changes nothing.

    ``languages`` (``ESCMON_ALERT_LANGUAGES``) limits the sentences counted to those
    languages; by default every scored sentence counts.

    Rows of those days whose scope no longer has any sentence are deleted, so a
    recount after re-tagging or re-scoring leaves no stale scope behind. With
    ``only_changed`` (the daily stage), days with no prediction newer than their
    signals are skipped: a rerun of a finished day does no aggregation.
    """
    days = sorted(set(days))
    if only_changed and model_version is None and days:
        with session_scope(engine) as session:
            fresh = up_to_date_days(session, days)
        days = [day for day in days if day not in fresh]
    if not days:
        return {"days": 0, "signals": 0, "scopes": 0, "sentences_scored": 0}
    with session_scope(engine) as session:
        groups = load_groups(session, days, model_version, languages)
        rows = signals_from_groups(groups, days=days, model_version=model_version)
        now = utcnow()
        for row in rows:
            row["computed_at"] = now
        stale = delete(DailySignal).where(
            DailySignal.day.in_(days),
            tuple_(DailySignal.scope, DailySignal.day).not_in(
                [(row["scope"], row["day"]) for row in rows]
            ),
        )
        session.execute(stale)
        upsert(session, DailySignal, rows, key=["scope", "day"])
    return {
        "days": len(days),
        "signals": len(rows),
        "scopes": len({row["scope"] for row in rows}),
        "sentences_scored": sum(row["sentences_scored"] for row in rows if row["scope"] == ALL),
    }


# --- reading the series --------------------------------------------------------


@dataclass(frozen=True)
class SignalPoint:
    """One day of one scope's series (zeros on days without a row)."""

    day: dt.date
    sentences_scored: int = 0
    escalation_count: int = 0
    deescalation_count: int = 0
    escalation_stories: int = 0
    stories: int = 0
    escalation_share: float = 0.0
    tension_index: float = 0.0


def signal_series(
    session: Session, scope: str, *, start: dt.date, end: dt.date
) -> list[SignalPoint]:
    """Every calendar day from ``start`` to ``end`` of ``scope``, missing days as zeros."""
    query = select(DailySignal).where(
        DailySignal.scope == scope, DailySignal.day >= start, DailySignal.day <= end
    )
    found = {signal.day: signal for signal in session.execute(query).scalars()}
    points = []
    day = start
    while day <= end:
        signal = found.get(day)
        if signal is None:
            points.append(SignalPoint(day=day))
        else:
            points.append(
                SignalPoint(
                    day=day,
                    sentences_scored=signal.sentences_scored,
                    escalation_count=signal.escalation_count,
                    deescalation_count=signal.deescalation_count,
                    escalation_stories=signal.escalation_stories,
                    stories=signal.stories,
                    escalation_share=signal.escalation_share,
                    tension_index=signal.tension_index,
                )
            )
        day += dt.timedelta(days=1)
    return points


def scopes_on(session: Session, day: dt.date) -> list[str]:
    """The scopes with a signal row on ``day`` (``all`` first, then countries)."""
    query = select(DailySignal.scope).where(DailySignal.day == day)
    scopes = set(session.execute(query).scalars())
    return sorted(scopes, key=lambda scope: (scope != ALL, scope))


def country_match(countries: Any, code: str) -> Any:
    """SQL condition: the comma-separated ``countries`` expression names ``code``."""
    padded = literal(",") + func.upper(func.replace(countries, " ", "")) + literal(",")
    return padded.like(f"%,{code.upper()},%")
