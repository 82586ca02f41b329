"""Store throughput: :func:`pipeline.store.insert_ignore` against a raw ``executemany``.

Both write the same ``sentences`` rows (split from the bench articles) into identical
freshly loaded stores and commit: ours as the split stage does (one session,
insert-or-ignore counting the new rows, 5,000-row statements), the reference with the
DB-API driver alone (``INSERT OR IGNORE`` / ``ON CONFLICT DO NOTHING`` through
``cursor.executemany``), one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select

from bench.corpus import BenchArticle
from bench.stores import load_articles
from pipeline.store import insert_ignore, make_engine, session_scope
from pipeline.tables import Article, Sentence

COLUMNS = ("article_id", "idx", "start", "end", "text", "countries")


def sentence_rows(url: str) -> list[dict[str, Any]]:
    """The ``sentences`` rows of every article stored at ``url`` (no countries)."""
    from pipeline.text import split_sentences

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            stored = session.execute(select(Article.id, Article.text).order_by(Article.id))
            return [
                {
                    "article_id": aid,
                    "idx": i,
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "countries": "",
                }
                for aid, text in stored
                for i, s in enumerate(split_sentences(text))
            ]
    finally:
        engine.dispose()


def _ours(url: str, rows: list[dict[str, Any]]) -> float:
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        with session_scope(engine) as session:
            inserted = insert_ignore(session, Sentence, rows, returning=None)
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    assert inserted == len(rows), "the store was not empty"
    return seconds


def _raw(url: str, rows: list[dict[str, Any]]) -> float:
    engine = make_engine(url)
    try:
        sqlite = engine.dialect.name == "sqlite"
        mark = "?" if sqlite else "%s"
        verb = "INSERT OR IGNORE INTO" if sqlite else "INSERT INTO"
        tail = "" if sqlite else " ON CONFLICT DO NOTHING"
        names = ", ".join(f'"{c}"' for c in COLUMNS)
        sql = f"{verb} sentences ({names}) VALUES ({', '.join([mark] * len(COLUMNS))}){tail}"
        params = [tuple(row[c] for c in COLUMNS) for row in rows]
        connection = engine.raw_connection()  # same connect pragmas as the store's engine
        try:
            started = time.perf_counter()
            cursor = connection.cursor()
            cursor.executemany(sql, params)
            connection.commit()
            seconds = time.perf_counter() - started
        finally:
            connection.close()
    finally:
        engine.dispose()
    return seconds


def run(
    articles: list[BenchArticle], fresh_url: Callable[[str], AbstractContextManager[str]]
) -> dict[str, float]:
    """``rows``, ``rows_per_s``, ``raw_rows_per_s`` and ``ratio_to_raw`` (time ours/raw)."""
    with fresh_url("store_ours") as ours_url, fresh_url("store_raw") as raw_url:
        load_articles(ours_url, articles)
        load_articles(raw_url, articles)
        rows = sentence_rows(ours_url)
        ours = _ours(ours_url, rows)
        raw = _raw(raw_url, rows)
    return {
        "rows": float(len(rows)),
        "rows_per_s": len(rows) / ours if ours else 0.0,
        "raw_rows_per_s": len(rows) / raw if raw else 0.0,
        "ratio_to_raw": ours / raw if raw else 0.0,
    }
