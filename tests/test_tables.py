"""The ORM models: one metadata, the unique keys every stage's idempotence rests on."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint

from pipeline.tables import Base


def _unique_keys(table_name: str) -> set[tuple[str, ...]]:
    table = Base.metadata.tables[table_name]
    keys = {
        tuple(column.name for column in constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    }
    return keys | {tuple(c.name for c in table.primary_key.columns)}


def test_every_stage_writes_into_a_table_with_a_natural_unique_key() -> None:
    assert ("url",) in _unique_keys("articles")
    assert ("feed_id", "guid") in _unique_keys("articles")
    assert ("article_id", "idx") in _unique_keys("sentences")
    assert ("sentence_id", "model_version") in _unique_keys("predictions")
    assert ("scope", "day") in _unique_keys("daily_signals")
    assert ("scope", "day") in _unique_keys("alerts")
    assert ("feed_id", "entry_key") in _unique_keys("rejected_entries")


def test_the_expected_tables_and_no_others() -> None:
    assert set(Base.metadata.tables) == {
        "feeds",
        "articles",
        "story_bands",
        "rejected_entries",
        "sentences",
        "predictions",
        "daily_signals",
        "alerts",
        "runs",
        "labels",
    }
