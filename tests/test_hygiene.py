"""Text hygiene: control characters and terminal escapes from a feed never reach the store.

A real feed served on 127.0.0.1 (pytest-httpserver) carries a NUL in the middle of a
description, an SGR colour sequence and an OSC window-title sequence; the ingest stage
must store the whole text without any of them, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

from pytest_httpserver import HTTPServer
from sqlalchemy import select

from pipeline.feeds import ingest_feeds
from pipeline.registry import FeedSpec, save_registry
from pipeline.sentences import split_new_articles
from pipeline.store import session_scope
from pipeline.tables import Article, Sentence
from tests.test_feeds import item, rss, settings_for

DAY = dt.date(2024, 8, 10)
NOW = dt.datetime(2024, 8, 10, 12, 0, tzinfo=dt.UTC)
ESC = "\x1b"


def _has_control(text: str) -> bool:
    return any((ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in text)


def test_ingest_stores_feed_text_without_control_characters(
    tmp_path, engine, db_url: str, httpserver: HTTPServer
) -> None:
    feed = rss(
        item(
            "g-1",
            f"{ESC}]0;pwned\x07Belarus {ESC}[31mmoves{ESC}[0m troops to the border",
            "Belarus said on Saturday \x00 that it had moved troops to the border. "
            f"The ministry {ESC}[1mconfirmed{ESC}[0m it.",
            link="/news/1",
        ),
        title=f"Minsk {ESC}]2;feed title\x07Daily",
    )
    httpserver.expect_request("/feed.xml").respond_with_data(
        feed, content_type="application/rss+xml"
    )
    settings = settings_for(tmp_path, db_url)
    save_registry(
        settings.feeds_file,
        [FeedSpec("minsk", httpserver.url_for("/feed.xml"), fulltext="never")],
    )

    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert (counts["feeds_ok"], counts["articles_new"], counts["rejected"]) == (1, 1, 0)
    assert split_new_articles(engine)["sentences_new"] >= 3

    with session_scope(engine) as session:
        [article] = session.execute(select(Article)).scalars()
        sentences = [s.text for s in session.execute(select(Sentence)).scalars()]
        assert article.title == "Belarus moves troops to the border"
        assert article.summary == (
            "Belarus said on Saturday that it had moved troops to the border. "
            "The ministry confirmed it."
        )
        assert article.text == f"{article.title}\n\n{article.summary}"
        assert article.publisher == "Minsk Daily"
        stored = [article.title, article.summary, article.text, article.publisher, *sentences]
    assert "The ministry confirmed it." in sentences
    for text in stored:
        assert not _has_control(text), repr(text)
