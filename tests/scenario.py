"""Build a store that looks like a month of classified news, straight through the ORM.

Reusable by any test that needs signals, alerts or mail (also the Airflow
end-to-end test): :func:`quiet_then` writes ``quiet_days`` ordinary days and
then one final day (a spike, a day with double the volume at the same share, or
another quiet day); :func:`add_day` writes one day with exact counts.

Every story is one article of ``SENTENCES_PER_ARTICLE`` sentences. An
escalation story has one escalation sentence; the others are neutral. A quiet
day has ``STORIES_PER_DAY`` stories, ``QUIET_PATTERN`` of them escalation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Engine, func, select

from pipeline.store import insert_ignore, session_scope
from pipeline.tables import Article, Feed, Prediction, Sentence

FEED_NAME = "scenario"
MODEL_VERSION = "scenario-v1"
SENTENCES_PER_ARTICLE = 4
STORIES_PER_DAY = 20
QUIET_PATTERN = (2, 3, 4, 3, 2, 4, 3)  # any 7 consecutive quiet days: mean 3, sd 0.82
QUIET_MEAN = 3
SPIKE_STORIES = 14
ESCALATION_CUES = ["deploy troops", "close the border"]
ESCALATION_TEXT = "{country} troops were deployed to the border on {day} (story {n})."
NEUTRAL_TEXT = "Analysts discussed the economy of the region on {day}, item {n}.{k}."

Final = Literal["spike", "double", "quiet"]


@dataclass(frozen=True)
class Scenario:
    country: str
    quiet_days: list[dt.date]
    final_day: dt.date
    final: Final
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def days(self) -> list[dt.date]:
        return [*self.quiet_days, self.final_day]


def quiet_count(day: dt.date) -> int:
    """The number of escalation stories on a quiet ``day`` (a fixed weekly wobble)."""
    return QUIET_PATTERN[day.toordinal() % len(QUIET_PATTERN)]


def quiet_then(
    engine: Engine,
    *,
    final_day: dt.date,
    final: Final = "spike",
    quiet_days: int = 30,
    country: str = "BLR",
    lead_title: str | None = None,
    lead_url: str | None = None,
    lead_publisher: str | None = None,
    duplicates: int = 1,
    model_version: str = MODEL_VERSION,
) -> Scenario:
    """``quiet_days`` quiet days before ``final_day``, then the ``final`` day.

    ``spike``: ``SPIKE_STORIES`` escalation stories among ``STORIES_PER_DAY``
    (plus ``duplicates`` near-duplicate copies of the lead story, which must
    count once). ``double``: twice an average quiet day (6 escalation stories of
    40), so the count alone alarms under EARS C2 but the share is unchanged.
    ``lead_*`` set the top evidence article of the final day.
    """
    quiet = [final_day - dt.timedelta(days=n) for n in range(quiet_days, 0, -1)]
    totals: dict[str, int] = {"articles": 0, "sentences": 0}
    for day in quiet:
        _add(
            totals,
            add_day(
                engine,
                day,
                escalation_stories=quiet_count(day),
                quiet_stories=STORIES_PER_DAY - quiet_count(day),
                country=country,
                model_version=model_version,
            ),
        )
    copies = 0
    if final == "spike":
        escalation, copies = SPIKE_STORIES, duplicates
        calm = STORIES_PER_DAY - SPIKE_STORIES
    elif final == "double":  # twice an average quiet day: same share, twice the stories
        escalation = 2 * QUIET_MEAN
        calm = 2 * STORIES_PER_DAY - escalation
    else:
        escalation = quiet_count(final_day)
        calm = STORIES_PER_DAY - escalation
    _add(
        totals,
        add_day(
            engine,
            final_day,
            escalation_stories=escalation,
            quiet_stories=calm,
            duplicates=copies,
            country=country,
            lead_title=lead_title,
            lead_url=lead_url,
            lead_publisher=lead_publisher,
            model_version=model_version,
        ),
    )
    return Scenario(
        country=country, quiet_days=quiet, final_day=final_day, final=final, counts=totals
    )


def _add(totals: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        totals[key] = totals.get(key, 0) + value


def feed_id(engine: Engine) -> int:
    """The scenario's feed, created on first use."""
    with session_scope(engine) as session:
        insert_ignore(
            session,
            Feed,
            [
                {
                    "name": FEED_NAME,
                    "kind": "rss",
                    "tags": [],
                    "url": "http://feeds.example.test/scenario",
                }
            ],
        )
        return session.execute(select(Feed.id).where(Feed.name == FEED_NAME)).scalar_one()


def add_day(
    engine: Engine,
    day: dt.date,
    *,
    escalation_stories: int,
    quiet_stories: int,
    duplicates: int = 0,
    country: str = "BLR",
    lead_title: str | None = None,
    lead_url: str | None = None,
    lead_publisher: str | None = None,
    model_version: str = MODEL_VERSION,
) -> dict[str, int]:
    """Write one day's articles, sentences and predictions; returns what was written.

    Story 0 is the lead: its escalation sentence has the day's highest
    probability, and ``duplicates`` extra articles copy it under the same story id.
    """
    feed = feed_id(engine)
    with session_scope(engine) as session:
        next_story = session.execute(select(func.coalesce(func.max(Article.story_id), 0)))
        story_base = int(next_story.scalar_one()) + 1
    stories = [(n, n < escalation_stories) for n in range(escalation_stories + quiet_stories)]
    plan = [(n, escalating, 0) for n, escalating in stories]
    plan += [(0, True, copy) for copy in range(1, duplicates + 1) if escalation_stories]
    articles, sentences, predictions = [], [], []
    for n, escalating, copy in plan:
        key = f"{day}-{n}-{copy}"
        lead = n == 0 and escalating
        articles.append(
            {
                "feed_id": feed,
                "guid": f"scenario:{key}",
                "url": (
                    lead_url
                    if lead and copy == 0 and lead_url is not None
                    else f"https://news.example.test/{key}"
                ),
                "title": lead_title if lead and lead_title is not None else f"Story {n} of {day}",
                "publisher": lead_publisher if lead and lead_publisher else "Example News",
                "summary": "",
                "text": "",
                "language": "en",
                "published_at": dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC),
                "day": day,
                "content_hash": hashlib.sha256(key.encode()).hexdigest(),
                "story_id": story_base + n,
                "countries": country,
            }
        )
    with session_scope(engine) as session:
        ids = insert_ignore(session, Article, articles)
        by_guid = dict(
            session.execute(select(Article.guid, Article.id).where(Article.id.in_(ids))).all()
        )
        for (n, escalating, _copy), article in zip(plan, articles, strict=True):
            article_id = by_guid[article["guid"]]
            for k in range(SENTENCES_PER_ARTICLE):
                flagged = escalating and k == 0
                text = (ESCALATION_TEXT if flagged else NEUTRAL_TEXT).format(
                    country=country, day=day, n=n, k=k
                )
                sentences.append(
                    {
                        "article_id": article_id,
                        "idx": k,
                        "start": 0,
                        "end": len(text),
                        "text": text,
                        # the flagged sentence names the country; the rest inherit it
                        "countries": country if flagged else "",
                    }
                )
        sentence_ids = insert_ignore(session, Sentence, sentences)
        rows = session.execute(
            select(Sentence.id, Sentence.idx, Sentence.article_id, Article.story_id)
            .join(Article, Sentence.article_id == Article.id)
            .where(Sentence.id.in_(sentence_ids))
        ).all()
        escalating_stories = {story_base + n for n, escalating, _ in plan if escalating}
        for row in rows:
            flagged = row.story_id in escalating_stories and row.idx == 0
            p = _probability(row.story_id - story_base) if flagged else 0.05
            predictions.append(
                {
                    "sentence_id": row.id,
                    "model_version": model_version,
                    "label": "escalation" if flagged else "neutral",
                    "p_escalation": p,
                    "p_deescalation": 0.02 if flagged else 0.05,
                    "p_neutral": round(1.0 - p - (0.02 if flagged else 0.05), 6),
                    "cues": ESCALATION_CUES if flagged else [],
                }
            )
        insert_ignore(session, Prediction, predictions, returning=None)
    return {"articles": len(articles), "sentences": len(sentences)}


def _probability(story: int) -> float:
    """0.99 for the lead story, then slowly lower: a stable evidence order."""
    return round(max(0.99 - 0.01 * story, 0.6), 4)
