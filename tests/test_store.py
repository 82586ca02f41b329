from __future__ import annotations

import datetime as dt
import os

import pytest
from sqlalchemy import insert, inspect, select, text

from pipeline import store
from pipeline.tables import Article, Base, Feed, Prediction, Run, Sentence


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    engine = store.make_engine(db_url)
    expected = set(Base.metadata.tables)
    assert expected <= set(inspect(engine).get_table_names())
    assert store.current_revision(engine) == store.head_revision(db_url)

    store.downgrade(db_url, "base")
    assert not expected & set(inspect(engine).get_table_names())
    assert store.current_revision(engine) is None

    store.upgrade(db_url)
    assert expected <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_check_schema_names_the_fix(tmp_path) -> None:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(store.StoreError, match="escmon db upgrade"):
        store.check_schema(engine)


def test_check_schema_unreachable_database() -> None:
    engine = store.make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(store.StoreError, match="cannot open database"):
        store.check_schema(engine)


def _feed(name: str, **extra) -> dict:
    return {"name": name, "kind": "rss", "url": f"http://example.test/{name}", "tags": [], **extra}


def test_insert_ignore_returns_only_new_ids(engine) -> None:
    with store.session_scope(engine) as session:
        first = store.insert_ignore(session, Feed, [_feed("a"), _feed("b")])
        again = store.insert_ignore(session, Feed, [_feed("a"), _feed("c")])
    assert len(first) == 2
    assert len(again) == 1
    with store.session_scope(engine) as session:
        names = session.execute(select(Feed.name).order_by(Feed.name)).scalars().all()
    assert names == ["a", "b", "c"]


def test_insert_ignore_in_batches(engine, monkeypatch) -> None:
    monkeypatch.setattr(store, "BATCH_ROWS", 7)
    rows = [_feed(f"f{i:03d}") for i in range(50)]
    with store.session_scope(engine) as session:
        assert len(store.insert_ignore(session, Feed, rows)) == 50
        assert store.insert_ignore(session, Feed, rows) == []


def _sentence_ids(engine, n: int) -> list[int]:
    with store.session_scope(engine) as session:
        feed_id = store.insert_ignore(session, Feed, [_feed("a")])[0]
        article_id = store.insert_ignore(
            session,
            Article,
            [
                {
                    "feed_id": feed_id,
                    "guid": "g1",
                    "url": "http://example.test/1",
                    "title": "t",
                    "text": "x",
                    "language": "en",
                    "day": dt.date(2024, 8, 10),
                    "published_at": dt.datetime(2024, 8, 10, tzinfo=dt.UTC),
                    "content_hash": "h1",
                }
            ],
        )[0]
        rows = [
            {"article_id": article_id, "idx": i, "start": i, "end": i + 1, "text": "x"}
            for i in range(n)
        ]
        return store.insert_ignore(session, Sentence, rows)


def test_insert_columns_takes_lists_and_shared_values(engine, monkeypatch) -> None:
    monkeypatch.setattr(store, "BATCH_ROWS", 3)  # several batches
    monkeypatch.setattr(store, "SQLITE_VARIABLES", 20)  # and several statements per batch
    ids = sorted(_sentence_ids(engine, 7))
    columns = {
        "sentence_id": ids,
        "model_version": "v1",
        "label": ["neutral"] * 7,
        "p_escalation": [0.1] * 7,
        "p_deescalation": [0.2] * 7,
        "p_neutral": [0.7] * 7,
    }
    with store.session_scope(engine) as session:
        assert store.insert_columns(session, Prediction, columns) == 7
        assert store.insert_columns(session, Prediction, columns) == 0  # all collide
    with store.session_scope(engine) as session:
        rows = session.execute(select(Prediction).order_by(Prediction.sentence_id)).scalars()
        stored = [(p.sentence_id, p.model_version, p.p_neutral, p.cues) for p in rows]
    assert stored == [(i, "v1", 0.7, []) for i in ids]


def test_insert_columns_refuses_bad_columns(engine) -> None:
    with store.session_scope(engine) as session:
        with pytest.raises(store.StoreError, match="no such columns"):
            store.insert_columns(session, Prediction, {"sentence_id": [1], "colour": ["red"]})
        with pytest.raises(store.StoreError, match="different lengths"):
            store.insert_columns(session, Prediction, {"sentence_id": [1, 2], "label": ["x"]})


def test_upsert_updates_named_columns(engine) -> None:
    with store.session_scope(engine) as session:
        store.insert_ignore(session, Feed, [_feed("a", last_status=200)])
        store.upsert(
            session, Feed, [_feed("a", last_status=500)], key=["name"], update=["last_status"]
        )
    with store.session_scope(engine) as session:
        assert session.execute(select(Feed.last_status)).scalar_one() == 500


def test_session_scope_rolls_back_on_error(engine) -> None:
    with pytest.raises(RuntimeError), store.session_scope(engine) as session:
        store.insert_ignore(session, Feed, [_feed("a")])
        raise RuntimeError("boom")
    assert store.table_counts(engine)["feeds"] == 0


def test_json_and_dates_round_trip(engine) -> None:
    now = dt.datetime(2024, 8, 10, 12, 0, tzinfo=dt.UTC)
    row = {
        "run_id": "r1",
        "run_day": dt.date(2024, 8, 10),
        "stage": "split",
        "status": "ok",
        "counts": {"sentences_new": 3},
        "error": None,
        "started_at": now,
        "finished_at": now,
        "duration_s": 0.5,
    }
    with store.session_scope(engine) as session:
        store.insert_ignore(session, Run, [row], returning=None)
    with store.session_scope(engine) as session:
        run = session.execute(select(Run)).scalar_one()
    assert run.counts == {"sentences_new": 3}
    assert run.run_day == dt.date(2024, 8, 10)


def test_insert_ignore_without_returning_counts_new_rows(engine, monkeypatch) -> None:
    monkeypatch.setattr(store, "BATCH_ROWS", 7)
    rows = [_feed(f"f{i:03d}") for i in range(20)]
    with store.session_scope(engine) as session:
        assert store.insert_ignore(session, Feed, rows[:5], returning=None) == 5
        assert store.insert_ignore(session, Feed, rows, returning=None) == 15
        assert store.insert_ignore(session, Feed, rows, returning=None) == 0
        assert store.insert_ignore(session, Feed, [], returning=None) == 0
        assert store.insert_ignore(session, Feed, []) == []
    assert store.table_counts(engine)["feeds"] == 20


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands timestamps back naive (in UTC); PostgreSQL aware."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def test_insert_ignore_fills_python_defaults_and_keeps_types(engine) -> None:
    """The PostgreSQL path sends text arrays: defaults, NULLs and every column type survive."""
    before = dt.datetime.now(dt.UTC)
    with store.session_scope(engine) as session:
        [feed_id] = store.insert_ignore(session, Feed, [{"name": "a", "url": "http://x"}])
        [article_id] = store.insert_ignore(
            session,
            Article,
            [
                {
                    "feed_id": feed_id,
                    "url": None,
                    "guid": "g",
                    "title": 'Quote "x", {y}',
                    "published_at": dt.datetime(2024, 8, 10, 12, 30, 15, 250000, tzinfo=dt.UTC),
                    "day": dt.date(2024, 8, 10),
                    "content_hash": "h",
                    "simhash": -(2**63),
                }
            ],
        )
        store.insert_ignore(
            session,
            Sentence,
            [
                {
                    "article_id": article_id,
                    "idx": i,
                    "start": 10 * i,
                    "end": 10 * i + 9,
                    "text": f"s{i}",
                }
                for i in range(3)
            ],
            returning=None,
        )
        store.insert_ignore(
            session,
            Prediction,
            [
                {
                    "sentence_id": session.execute(select(Sentence.id).limit(1)).scalar_one(),
                    "model_version": "m",
                    "label": "neutral",
                    "p_escalation": 0.1,
                    "p_deescalation": float("1e-300"),
                    "p_neutral": 0.9,
                }
            ],
            returning=None,
        )
    with store.session_scope(engine) as session:
        feed = session.execute(select(Feed)).scalar_one()
        article = session.execute(select(Article)).scalar_one()
        sentences = session.execute(select(Sentence).order_by(Sentence.idx)).scalars().all()
        prediction = session.execute(select(Prediction)).scalar_one()
    assert (feed.kind, feed.tags, feed.enabled, feed.fulltext) == ("rss", [], True, "auto")
    assert feed.consecutive_failures == 0 and feed.language is None
    assert _aware(feed.created_at) >= before
    assert article.url is None and article.title == 'Quote "x", {y}'
    assert article.simhash == -(2**63) and article.countries == ""
    assert _aware(article.published_at) == dt.datetime(2024, 8, 10, 12, 30, 15, 250000, dt.UTC)
    assert [(s.start, s.end, s.text, s.countries) for s in sentences] == [
        (0, 9, "s0", ""),
        (10, 19, "s1", ""),
        (20, 29, "s2", ""),
    ]
    assert prediction.p_deescalation == 1e-300 and prediction.cues == []


def test_upsert_inserts_and_updates_in_one_call(engine) -> None:
    with store.session_scope(engine) as session:
        store.insert_ignore(session, Feed, [_feed("a", last_status=200, enabled=True)])
        store.upsert(
            session,
            Feed,
            [
                _feed("a", last_status=500, enabled=False),
                _feed("b", last_status=None, enabled=False),
            ],
            key=["name"],
            update=["last_status", "enabled"],
        )
    with store.session_scope(engine) as session:
        rows = session.execute(
            select(Feed.name, Feed.last_status, Feed.enabled).order_by(Feed.name)
        ).all()
    assert [tuple(r) for r in rows] == [("a", 500, False), ("b", None, False)]


def test_sqlite_bulk_path_stores_what_sqlalchemy_stores(tmp_path) -> None:
    """insert_ignore(returning=None) on SQLite bypasses SQLAlchemy's executemany; the stored
    values (JSON text, booleans, timestamps, defaults) must be the ones SQLAlchemy writes."""
    url = f"sqlite:///{tmp_path / 'bulk.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    stamp = dt.datetime(2024, 8, 10, 12, 30, 1, 250, tzinfo=dt.UTC)
    explicit = {"tags": ["a", {"b": 1}], "enabled": False, "created_at": stamp}
    with store.session_scope(engine) as session:
        session.execute(insert(Feed), [_feed("orm", **explicit), _feed("orm-defaults")])
        inserted = store.insert_ignore(
            session,
            Feed,
            [_feed("bulk", **explicit), _feed("bulk-defaults"), _feed("orm")],
            returning=None,
        )
    assert inserted == 2  # "orm" collides and is skipped
    query = text("SELECT name, kind, tags, enabled, created_at, typeof(created_at) FROM feeds")
    with engine.connect() as connection:
        raw = {row[0]: row[1:] for row in connection.execute(query)}
    engine.dispose()
    assert raw["bulk"] == raw["orm"]
    default_kind, default_tags, default_enabled, default_stamp, stamp_type = raw["orm-defaults"]
    kind, tags, enabled, created_at, created_type = raw["bulk-defaults"]
    assert (kind, tags, enabled, created_type) == (
        default_kind,
        default_tags,
        default_enabled,
        stamp_type,
    )
    assert len(created_at) == len(default_stamp)  # the same timestamp format


def test_beside_compute_threads_only_for_a_server_database(engine) -> None:
    import threading

    caller = threading.get_ident()
    with store.beside_compute(engine) as io:
        where = io.submit(threading.get_ident).result()
        failed = io.submit(int, "not a number")
        with pytest.raises(ValueError, match="not a number"):
            failed.result()  # an error reaches the caller when it asks for the result
        late = io.submit(store.table_counts, engine)
    assert late.done()  # leaving the block finishes what was submitted
    assert late.result()["feeds"] == 0
    assert (where != caller) == (engine.dialect.name == "postgresql")


def test_bulk_insert_sees_pending_orm_objects(engine) -> None:
    with store.session_scope(engine) as session:
        session.add(Feed(**_feed("a")))
        assert store.insert_ignore(session, Feed, [_feed("a"), _feed("b")], returning=None) == 1
    assert store.table_counts(engine)["feeds"] == 2


def test_insert_columns_takes_arrays_and_refuses_all_shared_values(engine) -> None:
    import numpy as np

    ids = sorted(_sentence_ids(engine, 3))
    columns = {
        "sentence_id": np.asarray(ids),
        "model_version": "v1",
        "label": "neutral",
        "p_escalation": np.zeros(3),
        "p_deescalation": np.zeros(3),
        "p_neutral": np.ones(3),
    }
    with store.session_scope(engine) as session:
        assert store.insert_columns(session, Prediction, columns) == 3
        with pytest.raises(store.StoreError, match="one value per row"):
            store.insert_columns(session, Prediction, {"sentence_id": 1, "label": "x"})


def _feed_batches(
    engine, names: list[str], *, fail_write: int = -1, fail_work: int = -1, workers: int = 1
):
    """store.run_batches over feed names: batch k is [(k + 1, name)], written as a feed."""

    def read(after: int) -> list[tuple[int, str]]:
        return [(after + 1, names[after])] if after < len(names) else []

    def work(batch):
        if batch[0][0] == fail_work:
            raise ValueError(f"work failed at {fail_work}")
        return batch[0]

    def write(item) -> int:
        if item[0] == fail_write:
            raise RuntimeError(f"write failed at {fail_write}")
        with store.session_scope(engine) as session:
            return store.insert_ignore(session, Feed, [_feed(item[1])], returning=None)

    return store.run_batches(engine, read, work, write, workers=workers)


def _feed_names(engine) -> list[str]:
    """The stored feeds' names in the order they were written."""
    with store.session_scope(engine) as session:
        return list(session.execute(select(Feed.name).order_by(Feed.id)).scalars())


def test_run_batches_writes_every_batch_in_order(engine) -> None:
    assert _feed_batches(engine, ["a", "b", "c"]) == [1, 1, 1]
    assert store.table_counts(engine)["feeds"] == 3


def test_run_batches_keeps_what_was_written_before_a_failed_write(engine) -> None:
    with pytest.raises(RuntimeError, match="write failed at 2"):
        _feed_batches(engine, ["a", "b", "c", "d"], fail_write=2)
    with store.session_scope(engine) as session:
        names = set(session.execute(select(Feed.name)).scalars())
    assert "a" in names and "b" not in names


def test_run_batches_notes_a_failed_write_behind_another_error(engine) -> None:
    with pytest.raises(ValueError, match="work failed at 3") as caught:
        _feed_batches(engine, ["a", "b", "c", "d"], fail_write=2, fail_work=3)
    assert any("write failed at 2" in note for note in caught.value.__notes__)


def test_run_batches_in_worker_processes_writes_every_batch_in_order(engine) -> None:
    names = [f"feed-{n}" for n in range(7)]
    assert _feed_batches(engine, names, workers=2) == [1] * 7
    assert _feed_names(engine) == names


def test_run_batches_works_the_first_batch_here_and_the_rest_in_workers(engine) -> None:
    def read(after: int) -> list[tuple[int]]:
        return [(after + 1,)] if after < 5 else []

    pids = store.run_batches(engine, read, lambda batch: os.getpid(), lambda pid: pid, workers=2)
    assert pids[0] == os.getpid()  # what the work loads lazily is loaded before the fork
    assert len(pids) == 5 and os.getpid() not in pids[1:]


def test_run_batches_in_workers_raises_a_work_error_and_keeps_earlier_writes(engine) -> None:
    with pytest.raises(ValueError, match="work failed at 3"):
        _feed_batches(engine, ["a", "b", "c", "d", "e"], fail_work=3, workers=2)
    assert _feed_names(engine) == ["a", "b"]  # written in order: nothing after the failure


def test_migrations_match_the_orm_models(db_url: str) -> None:
    """Schema drift: what the migrations build is what ``pipeline/tables.py`` declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = store.make_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": False}
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []
