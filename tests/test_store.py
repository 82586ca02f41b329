from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect, select

from pipeline import store
from pipeline.tables import Base, Feed, Run


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


def test_upsert_updates_named_columns(engine) -> None:
    with store.session_scope(engine) as session:
        store.insert_ignore(session, Feed, [_feed("a", last_status=200)])
        store.upsert(session, Feed, [_feed("a", last_status=500)], key=["name"],
                     update=["last_status"])
    with store.session_scope(engine) as session:
        assert session.execute(select(Feed.last_status)).scalar_one() == 500


def test_session_scope_rolls_back_on_error(engine) -> None:
    with pytest.raises(RuntimeError), store.session_scope(engine) as session:
        store.insert_ignore(session, Feed, [_feed("a")])
        raise RuntimeError("boom")
    assert store.table_counts(engine)["feeds"] == 0


def test_json_and_dates_round_trip(engine) -> None:
    now = dt.datetime(2024, 8, 10, 12, 0, tzinfo=dt.UTC)
    row = {"run_id": "r1", "run_day": dt.date(2024, 8, 10), "stage": "split", "status": "ok",
           "counts": {"sentences_new": 3}, "error": None, "started_at": now,
           "finished_at": now, "duration_s": 0.5}
    with store.session_scope(engine) as session:
        store.insert_ignore(session, Run, [row], returning=None)
    with store.session_scope(engine) as session:
        run = session.execute(select(Run)).scalar_one()
    assert run.counts == {"sentences_new": 3}
    assert run.run_day == dt.date(2024, 8, 10)
