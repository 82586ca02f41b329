"""The region's own press end to end: real Russian and Ukrainian feeds, served by a local
HTTP server, are ingested, split with a language per sentence, and scored by the
multilingual model (the shipped one, from models/)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from pipeline import daily, store
from pipeline.classify import MULTI_MODEL_NAME, load_model
from pipeline.tables import Article, Feed, Prediction, Sentence

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "corpora" / "feeds" / "real"
FEEDS = {"meduza": "ru", "suspilne": "uk"}

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/corpora/feeds/real")


def _registry(path: Path, httpserver) -> None:
    lines = []
    for name, language in FEEDS.items():
        httpserver.expect_request(f"/{name}.xml").respond_with_data(
            (REAL / f"{name}.xml").read_bytes(), content_type="application/rss+xml"
        )
        lines += [
            "[[feeds]]",
            f'name = "{name}"',
            f'url = "{httpserver.url_for(f"/{name}.xml")}"',
            f'language = "{language}"',
            'fulltext = "never"',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def test_daily_job_scores_the_russian_and_ukrainian_feeds(settings, httpserver) -> None:
    _registry(settings.feeds_file, httpserver)
    settings = settings.model_copy(update={"offline": False, "second_opinion": True})
    ctx = daily.make_context(dt.date(2024, 8, 10), settings)
    results = daily.run_daily(ctx)
    assert all(r.status == "ok" for r in results), [(r.stage, r.error) for r in results]
    multi = load_model(REPO / "models", MULTI_MODEL_NAME)
    with store.session_scope(ctx.engine) as session:
        scored = dict(
            session.execute(
                select(Feed.name, func.count(Prediction.id))
                .join(Article, Article.feed_id == Feed.id)
                .join(Sentence, Sentence.article_id == Article.id)
                .join(Prediction, Prediction.sentence_id == Sentence.id)
                .where(Prediction.model_version == multi.version)
                .group_by(Feed.name)
            ).all()
        )
        languages = dict(
            session.execute(
                select(Sentence.language, func.count())
                .join(Article, Article.id == Sentence.article_id)
                .join(Feed, Feed.id == Article.feed_id)
                .where(Feed.name == "suspilne")
                .group_by(Sentence.language)
            ).all()
        )
    assert scored["meduza"] >= 30 and scored["suspilne"] >= 100
    assert max(languages, key=languages.__getitem__) == "uk"
    _assert_the_second_opinion_was_asked_where_the_model_has_one(ctx.engine, multi)
    ctx.engine.dispose()


def _assert_the_second_opinion_was_asked_where_the_model_has_one(engine, multi) -> None:
    """The stored probabilities are the model's with its second opinion (the daily job's
    default), which differ from the fast model's alone on the sentences it is unsure of."""
    with store.session_scope(engine) as session:
        rows = session.execute(
            select(Sentence.text, Prediction.p_escalation, Prediction.p_deescalation)
            .join(Prediction, Prediction.sentence_id == Sentence.id)
            .where(Prediction.model_version == multi.version)
            .order_by(Sentence.id)
        ).all()
    texts = [text for text, _, _ in rows]
    stored = np.asarray([[pe, pd] for _, pe, pd in rows])
    np.testing.assert_allclose(stored, multi.predict_proba(texts)[:, :2], atol=1e-9)
    if not multi.second_opinion:
        pytest.skip(f"the shipped {multi.version} has no second opinion")
    fast = load_model(REPO / "models", MULTI_MODEL_NAME, second_opinion=False)
    assert (np.abs(fast.predict_proba(texts)[:, :2] - stored) > 1e-6).any(axis=1).sum() > 0
