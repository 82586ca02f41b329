"""The split stage's edge: articles without sentences -> sentence rows with offsets.

Splitting itself is :func:`pipeline.text.split_sentences` (pure); this module
only reads articles and writes sentences in bulk.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, exists, select, update

from pipeline.gctools import collector_paused
from pipeline.store import insert_ignore, run_batches, session_scope
from pipeline.tables import Article, Sentence

if TYPE_CHECKING:
    from pipeline.geo import Gazetteer

ARTICLE_BATCH = 500


def sentence_rows(
    article_id: int, text: str, gazetteer: Gazetteer, language: str | None = None
) -> list[dict[str, Any]]:
    """One row per sentence of ``text``: offsets into it, the countries it names, and its
    language (``language``, the article's, unless the sentence's own letters say otherwise).
    """
    from pipeline.language import sentence_language
    from pipeline.text import split_sentences

    return [
        {
            "article_id": article_id,
            "idx": idx,
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "countries": ",".join(sorted(gazetteer.countries(s.text))),
            "language": sentence_language(s.text, language),
        }
        for idx, s in enumerate(split_sentences(text))
    ]


def article_countries(rows: list[dict[str, Any]]) -> str:
    """The union of the countries named by an article's sentences, as sorted codes."""
    codes = {code for row in rows for code in row["countries"].split(",") if code}
    return ",".join(sorted(codes))


def _not_split(since: dt.date | None = None, until: dt.date | None = None) -> Any:
    """The articles that have no sentence rows yet (published from ``since`` to ``until``)."""
    condition = ~exists().where(Sentence.article_id == Article.id)
    if since is not None:
        condition = and_(condition, Article.day >= since)
    if until is not None:
        condition = and_(condition, Article.day <= until)
    return condition


def _unsplit_articles(
    session, after_id: int, limit: int, since: dt.date | None = None, until: dt.date | None = None
) -> list[tuple[int, str, str | None]]:
    query = (
        select(Article.id, Article.text, Article.language)
        .where(Article.id > after_id, _not_split(since, until))
        .order_by(Article.id)
        .limit(limit)
    )
    return [(row.id, row.text, row.language) for row in session.execute(query)]


def count_unsplit(session, since: dt.date | None = None, until: dt.date | None = None) -> int:
    from sqlalchemy import func

    query = select(func.count()).where(_not_split(since, until)).select_from(Article)
    return session.execute(query).scalar_one()


@collector_paused()  # millions of short-lived rows, no cycles among them
def split_new_articles(
    engine: Engine,
    *,
    progress=None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    workers: int = 1,
    batch_size: int = ARTICLE_BATCH,
) -> dict[str, int]:
    """Split every article that has no sentences yet and tag countries; returns counts.

    ``since``/``until`` limit it to the articles published on those days (a rebuild).

    Batches of ``batch_size`` articles are split in ``workers`` processes while this one
    reads and writes, or, with one worker, on PostgreSQL the next batch is read and the last
    one written while this one is split (see :func:`pipeline.store.run_batches`); each batch
    is its own transaction.
    """
    from pipeline.geo import load_gazetteer

    gazetteer = load_gazetteer()
    with session_scope(engine) as session:
        total = count_unsplit(session, since, until)
    if progress is not None:
        progress.start("split", total)

    def read(after_id: int) -> list[tuple[int, str, str | None]]:
        with session_scope(engine) as session:
            return _unsplit_articles(session, after_id, batch_size, since, until)

    def write(per_article: dict[int, list[dict[str, Any]]]) -> tuple[int, int]:
        rows = [row for article_rows in per_article.values() for row in article_rows]
        with session_scope(engine) as session:
            stored = insert_ignore(session, Sentence, rows, returning=None)
            session.execute(
                update(Article),
                [{"id": aid, "countries": article_countries(r)} for aid, r in per_article.items()],
            )
        return len(per_article), stored

    def split(batch: Any) -> dict[int, list[dict[str, Any]]]:
        return {aid: sentence_rows(aid, text, gazetteer, language) for aid, text, language in batch}

    written = run_batches(engine, read, split, write, progress=progress, workers=workers)
    return {
        "articles_split": sum(articles for articles, _ in written),
        "sentences_new": sum(stored for _, stored in written),
    }
