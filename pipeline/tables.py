"""The ORM: one typed model per table.

Unique keys are the idempotency contract: every stage writes with
insert-or-ignore (or upsert) on them, so a rerun adds nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time as an aware UTC datetime: SQLite hands back naive ones (stored in UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy's documented class attribute
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Feed(Base):
    """A source of articles: an RSS/Atom feed, or the ``seed`` folder."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="rss")  # rss | seed
    url: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    fulltext: Mapped[str] = mapped_column(String(8), default="auto")  # auto | always | never
    # HTTP cache validators and health
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_warning: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_fetched_at: Mapped[dt.datetime | None]
    next_attempt_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Article(Base):
    """One stored article. ``story_id`` groups near-duplicate copies of one story."""

    __tablename__ = "articles"
    __table_args__ = (
        UniqueConstraint("url", name="uq_articles_url"),
        UniqueConstraint("feed_id", "guid", name="uq_articles_feed_guid"),
        UniqueConstraint("content_hash", name="uq_articles_content_hash"),
        Index("ix_articles_day", "day"),
        Index("ix_articles_story", "story_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    url: Mapped[str | None] = mapped_column(Text)
    guid: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    publisher: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    text_source: Mapped[str] = mapped_column(String(16), default="summary")
    fulltext_error: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    published_at: Mapped[dt.datetime]
    published_source: Mapped[str] = mapped_column(String(16), default="published")
    day: Mapped[dt.date] = mapped_column(Date)
    content_hash: Mapped[str] = mapped_column(String(64))
    simhash: Mapped[int | None] = mapped_column(BigInteger)
    story_id: Mapped[int | None] = mapped_column(Integer)
    countries: Mapped[str] = mapped_column(Text, default="")
    fetched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StoryBand(Base):
    """One LSH band key of an article's MinHash, written once when the article is grouped.

    Near-duplicate grouping (:mod:`pipeline.dedup`) looks up a new article's band keys here
    instead of re-reading the window: articles sharing a ``(band, key)`` are its candidates.
    Every keyed article also has a marker row (band ``-1``, key 0), even one too short to be
    compared; a grouped article without it was stored before this table (or by the seed
    loader) and is keyed lazily. A bucket keeps at most a few rows a day (see
    ``pipeline.dedup.BUCKET_TAIL``), so a flood of copies stores few.
    """

    __tablename__ = "story_bands"
    __table_args__ = (
        Index("ix_story_bands_article", "article_id"),
        {"sqlite_with_rowid": False},
    )

    band: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    day: Mapped[dt.date] = mapped_column(Date)  # the article's, for the window


class RejectedEntry(Base):
    """A feed entry that was read but not stored, and why (duplicate, no text, ...)."""

    __tablename__ = "rejected_entries"
    __table_args__ = (UniqueConstraint("feed_id", "entry_key", name="uq_rejected_feed_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    entry_key: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Sentence(Base):
    __tablename__ = "sentences"
    __table_args__ = (UniqueConstraint("article_id", "idx", name="uq_sentences_article_idx"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    countries: Mapped[str] = mapped_column(Text, default="")
    # ISO 639-1 code detected per sentence (pipeline.text.sentence_language): a quote in
    # another language keeps its own; NULL only where detection had nothing to read.
    language: Mapped[str | None] = mapped_column(String(16))


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("sentence_id", "model_version", name="uq_predictions_sentence_model"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sentence_id: Mapped[int] = mapped_column(ForeignKey("sentences.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(16))
    p_escalation: Mapped[float] = mapped_column(Float)
    p_deescalation: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    cues: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DailySignal(Base):
    """Aggregates for one scope (``all`` or a country code) and day."""

    __tablename__ = "daily_signals"
    __table_args__ = (UniqueConstraint("scope", "day", name="uq_signals_scope_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    day: Mapped[dt.date] = mapped_column(Date)
    model_version: Mapped[str] = mapped_column(String(64))
    articles: Mapped[int] = mapped_column(Integer, default=0)
    stories: Mapped[int] = mapped_column(Integer, default=0)
    sentences_scored: Mapped[int] = mapped_column(Integer, default=0)
    escalation_count: Mapped[int] = mapped_column(Integer, default=0)
    deescalation_count: Mapped[int] = mapped_column(Integer, default=0)
    escalation_prob_sum: Mapped[float] = mapped_column(Float, default=0.0)
    deescalation_prob_sum: Mapped[float] = mapped_column(Float, default=0.0)
    escalation_stories: Mapped[int] = mapped_column(Integer, default=0)
    escalation_share: Mapped[float] = mapped_column(Float, default=0.0)
    tension_index: Mapped[float] = mapped_column(Float, default=0.0)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """A detected spike; also the outbox row its e-mail is sent from."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("scope", "day", name="uq_alerts_scope_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    day: Mapped[dt.date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(32))
    observed: Mapped[float] = mapped_column(Float)
    baseline_mean: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    statistic: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    # pending | sent | failed | suppressed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255))
    claimed_at: Mapped[dt.datetime | None]
    next_attempt_at: Mapped[dt.datetime | None]  # backoff after a rejected send
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]


class Run(Base):
    """One stage of one daily run: what it did and how long it took."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_day", "run_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    run_day: Mapped[dt.date] = mapped_column(Date)
    stage: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # ok | failed
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime]
    duration_s: Mapped[float] = mapped_column(Float)


class Label(Base):
    """An analyst's label for one sentence (``escmon label``), or one imported from a file.

    Kept with who gave it, when, and what the model of the day predicted, so a retrain can
    learn from it and the labels can be exported in the ``seeds/`` format. One label per
    text and analyst: answering again replaces it.
    """

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("text_sha256", "labeller", name="uq_labels_text_labeller"),
        Index("ix_labels_sentence", "sentence_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sentence_id: Mapped[int | None] = mapped_column(ForeignKey("sentences.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(16))  # escalation | deescalation | neutral
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)  # the article's URL or feed
    labeller: Mapped[str] = mapped_column(String(100))
    origin: Mapped[str] = mapped_column(String(16), default="queue")  # queue | import
    model_version: Mapped[str | None] = mapped_column(String(64))
    predicted_label: Mapped[str | None] = mapped_column(String(16))
    predicted_probability: Mapped[float | None] = mapped_column(Float)
    labelled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The text's language code (en, ru, uk, be, pl), so each model trains on its own
    # languages' labels; an imported label has no sentence to join it from.
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
