"""Throwaway stores for the benchmarks: a SQLite file, or a fresh PostgreSQL schema."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.engine import make_url

from bench.corpus import BenchArticle, article_rows, feed_rows, story_updates
from pipeline.store import insert_ignore, make_engine, session_scope, upgrade
from pipeline.tables import Article, Feed


@contextmanager
def sqlite_url(folder: Path, name: str) -> Iterator[str]:
    """A new SQLite file under ``folder`` (left for the temporary folder's cleanup)."""
    path = folder / f"{name}.db"
    for stale in folder.glob(f"{name}.db*"):
        stale.unlink()
    yield f"sqlite:///{path}"


@contextmanager
def postgres_url(base: str) -> Iterator[str]:
    """A URL on a fresh schema of the server at ``base``, dropped on exit."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def load_articles(url: str, articles: list[BenchArticle]) -> dict[str, float]:
    """Migrate ``url`` and store ``articles`` as feed articles, story ids set; timings."""
    upgrade(url)
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        with session_scope(engine) as session:
            insert_ignore(session, Feed, feed_rows(articles), returning=None)
            feed_ids = {name: id_ for name, id_ in session.execute(select(Feed.name, Feed.id))}
            insert_ignore(session, Article, article_rows(articles, feed_ids), returning=None)
            ids = {guid: id_ for guid, id_ in session.execute(select(Article.guid, Article.id))}
            session.execute(update(Article), story_updates(articles, ids))
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return {"articles": float(len(ids)), "seconds": seconds}


def scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql)).scalar_one()
