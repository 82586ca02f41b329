"""The split stage's edge: article text to sentence rows with exact offsets and countries."""

from __future__ import annotations

from pipeline.geo import load_gazetteer
from pipeline.sentences import article_countries, sentence_rows

TEXT = "Minsk moved troops to the Polish border. Warsaw protested. Markets were calm."


def test_rows_carry_exact_offsets_and_the_countries_each_sentence_names() -> None:
    rows = sentence_rows(7, TEXT, load_gazetteer())
    assert [row["idx"] for row in rows] == [0, 1, 2]
    assert all(TEXT[row["start"] : row["end"]] == row["text"] for row in rows)
    assert all(row["article_id"] == 7 for row in rows)
    first, second, third = rows
    assert {"BLR", "POL"} <= set(first["countries"].split(","))
    assert "POL" in second["countries"]
    assert not third["countries"]
    assert {"BLR", "POL"} <= set(article_countries(rows).split(","))


def test_the_split_stage_in_worker_processes_stores_what_splitting_here_gives(engine) -> None:
    import datetime as dt

    from sqlalchemy import select

    from pipeline.sentences import split_new_articles
    from pipeline.store import insert_ignore, session_scope
    from pipeline.tables import Article, Feed, Sentence

    texts = [f"{TEXT} Kyiv said talks resumed on day {n}." for n in range(6)]
    with session_scope(engine) as session:
        [feed_id] = insert_ignore(session, Feed, [{"name": "f", "url": "http://x", "tags": []}])
        published = dt.datetime(2024, 8, 10, tzinfo=dt.UTC)
        article = {"feed_id": feed_id, "day": published.date(), "published_at": published}
        rows = [
            {
                **article,
                "guid": f"g{n}",
                "title": f"t{n}",
                "text": text,
                "content_hash": f"h{n}",
                "language": "en",
            }
            for n, text in enumerate(texts)
        ]
        insert_ignore(session, Article, rows, returning=None)
    counts = split_new_articles(engine, workers=2, batch_size=2)
    assert counts == {"articles_split": 6, "sentences_new": 24}
    with session_scope(engine) as session:
        ids = {text: id_ for text, id_ in session.execute(select(Article.text, Article.id))}
        stored = session.execute(
            select(Sentence.article_id, Sentence.idx, Sentence.text, Sentence.countries).order_by(
                Sentence.id
            )  # the order they were written in
        ).all()
    gazetteer = load_gazetteer()
    expected = [
        (row["article_id"], row["idx"], row["text"], row["countries"])
        for text in texts
        for row in sentence_rows(ids[text], text, gazetteer, "en")
    ]
    assert [tuple(row) for row in stored] == expected
