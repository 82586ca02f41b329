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
