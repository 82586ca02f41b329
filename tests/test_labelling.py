"""The labelling loop: the queue, a scripted session, export and import, the held-back fifth."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline.classify import load_model
from pipeline.labelling import (
    Candidate,
    balanced_queue,
    entropy,
    export_labels,
    import_labels,
    is_held_back,
    load_labels,
    margin,
    queue,
    run_queue,
    training_rows,
)
from pipeline.store import session_scope
from pipeline.tables import Label
from tests import scenario
from tests.conftest import REPO

DAY = dt.date(2024, 8, 10)


def _candidate(n: int, feed: str, probabilities: tuple[float, float, float]) -> Candidate:
    e, d, u = probabilities
    return Candidate(
        sentence_id=n,
        text=f"sentence {n}",
        title=f"title {n}",
        publisher=None,
        source=None,
        feed=feed,
        model_version="m",
        probabilities={"escalation": e, "deescalation": d, "neutral": u},
    )


def test_margin_and_entropy() -> None:
    assert margin([0.5, 0.3, 0.2]) == pytest.approx(0.2)
    assert margin([0.4, 0.4, 0.2]) == 0.0
    assert entropy([1 / 3] * 3) == pytest.approx(1.585, abs=1e-3)
    assert entropy([1.0, 0.0, 0.0]) == 0.0


def test_queue_takes_turns_across_classes_and_feeds() -> None:
    candidates = [
        # Feed a: many unsure escalation sentences; it must not fill the queue.
        *[_candidate(n, "a", (0.40 + n / 1000, 0.35, 0.25 - n / 1000)) for n in range(10)],
        _candidate(20, "b", (0.45, 0.30, 0.25)),
        _candidate(30, "c", (0.20, 0.41, 0.39)),  # de-escalation, very unsure
        _candidate(40, "c", (0.10, 0.10, 0.80)),  # neutral, sure
    ]
    picked = balanced_queue(candidates, 5)
    assert [c.sentence_id for c in picked] == [30, 0, 40, 20, 1]
    assert [c.predicted for c in picked[:3]] == ["deescalation", "escalation", "neutral"]
    by_entropy = balanced_queue(candidates, 2, by="entropy")
    assert {c.predicted for c in by_entropy} == {"escalation", "deescalation"}
    assert len(balanced_queue(candidates, 100)) == len(candidates)


def test_the_held_back_fifth_is_fixed_by_text() -> None:
    texts = [f"sentence number {n}" for n in range(2000)]
    held = [text for text in texts if is_held_back(text)]
    assert 0.17 < len(held) / len(texts) < 0.23
    assert held == [text for text in texts if is_held_back(f"  {text} ")]  # stripped text


@pytest.fixture
def classifier():
    return load_model(REPO / "models")


@pytest.fixture
def stored(engine):
    """Three days of scenario news (one feed, English)."""
    for n in range(3):
        scenario.add_day(engine, DAY - dt.timedelta(days=n), escalation_stories=3, quiet_stories=3)
    return engine


def test_queue_scores_stored_sentences_with_the_active_model(stored, classifier) -> None:
    picked = queue(stored, classifier, limit=8)
    assert len(picked) == 8
    assert {c.model_version for c in picked} == {classifier.version}
    assert len({c.text for c in picked}) == 8  # no text twice
    assert all(c.feed == scenario.FEED_NAME and c.source for c in picked)
    first = picked[0]
    run_queue(stored, [first], labeller="ana", ask=lambda _: "n", show=lambda _: None)
    again = queue(stored, classifier, limit=100)
    assert first.text not in {c.text for c in again}  # labelled: not asked again


def _cli(monkeypatch, capsys, db_url: str, argv: list[str], answers: str = "") -> tuple[int, str]:
    from pipeline.cli import main
    from pipeline.config import get_settings

    monkeypatch.setenv("ESCMON_DATABASE_URL", db_url)
    monkeypatch.setenv("ESCMON_MODELS_DIR", str(REPO / "models"))
    monkeypatch.setattr("sys.stdin", io.StringIO(answers))
    get_settings.cache_clear()
    try:
        code = main(argv)
    finally:
        get_settings.cache_clear()
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_scripted_session_stores_its_labels(stored, db_url, monkeypatch, capsys) -> None:
    # e, d, then undo the d and answer n instead, skip one, an unknown key, then quit.
    answers = "e\nd\nu\nn\ns\nx\nq\ne\n"
    code, output = _cli(monkeypatch, capsys, db_url, ["label", "--who", "ana"], answers)
    assert code == 0, output
    assert "cues:" in output or "from:" in output
    assert "answer e, d, n, s (skip), u (undo) or q (quit)" in output
    assert "saved 2 label(s) as ana (escalation 1, deescalation 0, neutral 1)" in output
    assert "skipped 1, undone 1" in output
    labels = load_labels(stored)
    assert [(label.label, label.labeller, label.origin) for label in labels] == [
        ("escalation", "ana", "queue"),
        ("neutral", "ana", "queue"),
    ]
    model = load_model(REPO / "models")
    for label in labels:
        assert label.model_version == model.version
        assert label.predicted_label in {"escalation", "deescalation", "neutral"}
        assert 0 < (label.predicted_probability or 0) <= 1
        assert label.sentence_id is not None and label.labelled_at is not None
    # The end of input ends a session like q; what was answered is kept.
    code, output = _cli(monkeypatch, capsys, db_url, ["label", "--who", "bo"], "d\n")
    assert code == 0 and "saved 1 label(s) as bo" in output
    assert len(load_labels(stored)) == 3


def test_export_then_import_round_trip(stored, db_url, tmp_path, monkeypatch, capsys) -> None:
    _cli(monkeypatch, capsys, db_url, ["label", "--who", "ana"], "e\nn\nd\n")
    exported = tmp_path / "analyst.labels.jsonl"
    code, output = _cli(monkeypatch, capsys, db_url, ["label", "--export", str(exported)])
    assert code == 0 and "wrote 3 label(s)" in output
    rows = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert [set(row) for row in rows] == [{"text", "label", "reason", "source"}] * 3
    assert [row["label"] for row in rows] == ["escalation", "neutral", "deescalation"]
    assert all("analyst label by ana" in row["reason"] and "said" in row["reason"] for row in rows)
    assert all(row["source"].startswith("https://news.example.test/") for row in rows)

    with session_scope(stored) as session:
        session.execute(Label.__table__.delete())
    code, output = _cli(
        monkeypatch, capsys, db_url, ["label", "--import", str(exported), "--who", "ana"]
    )
    assert code == 0 and "3 label(s) stored, 0 already there" in output
    assert import_labels(stored, exported, "ana") == {"read": 3, "imported": 0, "known": 3}
    with session_scope(stored) as session:
        back = session.execute(select(Label.text, Label.label, Label.origin)).all()
    assert sorted((t, lab) for t, lab, _ in back) == sorted((r["text"], r["label"]) for r in rows)
    assert {origin for *_, origin in back} == {"import"}
    again = tmp_path / "again.jsonl"
    export_labels(stored, again)
    assert [json.loads(line)["reason"] for line in again.read_text().splitlines()] == [
        row["reason"] for row in rows
    ]


def test_a_bad_labels_file_is_one_error_and_stores_nothing(
    stored, db_url, tmp_path: Path, monkeypatch, capsys
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"text": "Troops moved.", "label": "escalation"}\n{"text": "x", "label": "war"}\n',
        encoding="utf-8",
    )
    code, output = _cli(monkeypatch, capsys, db_url, ["label", "--import", str(bad)])
    assert code == 1
    assert f"Error: {bad}:2: 'label' must be one of escalation, deescalation, neutral" in output
    assert load_labels(stored) == []


def test_training_rows_hold_back_a_fifth(stored, tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    texts = [f"Analyst sentence {n} about the border." for n in range(100)]
    path.write_text(
        "".join(json.dumps({"text": t, "label": "neutral"}) + "\n" for t in texts),
        encoding="utf-8",
    )
    import_labels(stored, path, "ana")
    train, held = training_rows(stored)
    assert len(train) + len(held) == 100 and 10 <= len(held) <= 30
    assert {text for text, _ in held} == {t for t in texts if is_held_back(t)}
