"""The labelling loop: the queue over every scored language, scripted sessions, export and
import with the language, the held-back fifth, the labels' language column (migration 0006)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline import store
from pipeline.classify import load_model, load_router
from pipeline.labelling import (
    Candidate,
    LanguageChoiceError,
    balanced_queue,
    entropy,
    export_labels,
    fair_shares,
    import_labels,
    is_held_back,
    load_labels,
    margin,
    parse_languages,
    queue,
    run_queue,
    training_rows,
)
from pipeline.store import insert_ignore, session_scope
from pipeline.tables import Article, Label, Prediction, Sentence
from tests import scenario
from tests.conftest import REPO

DAY = dt.date(2024, 8, 10)


def _candidate(
    n: int, feed: str, probabilities: tuple[float, float, float], language: str = "en"
) -> Candidate:
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
        language=language,
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


def test_queue_takes_turns_across_languages_within_a_class() -> None:
    # Many unsure English escalation sentences, fewer and surer Russian and Polish ones.
    english = [_candidate(n, "a", (0.40, 0.35, 0.25)) for n in range(6)]
    russian = [_candidate(10 + n, "ru-feed", (0.60, 0.20, 0.20), "ru") for n in range(3)]
    polish = [_candidate(20, "pl-feed", (0.55, 0.25, 0.20), "pl")]
    picked = balanced_queue([*english, *russian, *polish], 6)
    assert [c.language for c in picked] == ["en", "pl", "ru", "en", "ru", "en"]
    only_one_language = balanced_queue(english, 3)
    assert [c.sentence_id for c in only_one_language] == [0, 1, 2]


def test_fair_shares_split_the_pool_across_languages() -> None:
    assert fair_shares({"en": 5000, "ru": 10, "uk": 3000}, 5000) == {
        "ru": 10,
        "uk": 2495,
        "en": 2495,
    }
    assert fair_shares({"en": 7}, 5000) == {"en": 7}
    assert fair_shares({}, 10) == {}


def test_language_codes_are_checked() -> None:
    assert parse_languages("ru, UK,ru") == ("ru", "uk")
    with pytest.raises(LanguageChoiceError, match="'de', 'xx': not a language the monitor"):
        parse_languages("ru,de,xx")
    with pytest.raises(LanguageChoiceError, match="no language code given"):
        parse_languages(" , ")


def test_the_held_back_fifth_is_fixed_by_text() -> None:
    texts = [f"sentence number {n}" for n in range(2000)]
    held = [text for text in texts if is_held_back(text)]
    assert 0.17 < len(held) / len(texts) < 0.23
    assert held == [text for text in texts if is_held_back(f"  {text} ")]  # stripped text


@pytest.fixture
def classifier():
    return load_model(REPO / "models")


@pytest.fixture
def router():
    return load_router(REPO / "models")


RUSSIAN_TEXTS = (
    "Российские войска обстреляли Харьков ночью.",
    "Стороны договорились о прекращении огня и обмене пленными.",
    "В Москве прошла выставка современного искусства.",
)


def _add_russian_article(engine, router) -> None:
    """One Russian article from its own feed, its sentences scored by the multilingual model."""
    feed = scenario.feed_id(engine)
    with session_scope(engine) as session:
        [article_id] = insert_ignore(
            session,
            Article,
            [
                {
                    "feed_id": feed,
                    "guid": "ru-1",
                    "url": "https://ru.example.test/1",
                    "title": "Новости дня",
                    "publisher": "Пример",
                    "language": "ru",
                    "published_at": dt.datetime.combine(DAY, dt.time(8), tzinfo=dt.UTC),
                    "day": DAY,
                    "content_hash": hashlib.sha256(b"ru-1").hexdigest(),
                }
            ],
        )
        ids = insert_ignore(
            session,
            Sentence,
            [
                {"article_id": article_id, "idx": i, "start": 0, "end": len(t), "text": t}
                | {"language": "ru"}
                for i, t in enumerate(RUSSIAN_TEXTS)
            ],
        )
        predictions = router.predict(list(RUSSIAN_TEXTS), ["ru"] * len(RUSSIAN_TEXTS))
        insert_ignore(
            session,
            Prediction,
            [
                {"sentence_id": sentence_id, "cues": [], **prediction._asdict()}
                for sentence_id, prediction in zip(ids, predictions, strict=True)
            ],
            returning=None,
        )


@pytest.fixture
def stored(engine, router):
    """Three days of scenario news (one feed, English) and one Russian article."""
    for n in range(3):
        scenario.add_day(engine, DAY - dt.timedelta(days=n), escalation_stories=3, quiet_stories=3)
    _add_russian_article(engine, router)
    return engine


def test_queue_scores_stored_sentences_with_the_active_model(stored, classifier) -> None:
    picked = queue(stored, classifier, limit=8)  # an English model alone reads English only
    assert len(picked) == 8
    assert {c.model_version for c in picked} == {classifier.version}
    assert {c.language for c in picked} == {"en"}
    assert len({c.text for c in picked}) == 8  # no text twice
    assert all(c.feed == scenario.FEED_NAME and c.source for c in picked)
    first = picked[0]
    run_queue(stored, [first], labeller="ana", ask=lambda _: "n", show=lambda _: None)
    again = queue(stored, classifier, limit=100)
    assert first.text not in {c.text for c in again}  # labelled: not asked again


def test_queue_covers_every_scored_language(stored, router) -> None:
    assert router.multilingual is not None
    picked = queue(stored, router, limit=100)
    russian = [c for c in picked if c.language == "ru"]
    assert sorted(c.text for c in russian) == sorted(RUSSIAN_TEXTS)
    assert {c.model_version for c in russian} == {router.multilingual.version}
    assert {c.model_version for c in picked if c.language == "en"} == {router.english.version}
    assert "ru" in [c.language for c in picked[:6]]  # a turn within the first classes' turns
    only_russian = queue(stored, router, limit=100, languages=["ru"])
    assert {c.language for c in only_russian} == {"ru"} and len(only_russian) == 3
    assert queue(stored, router, limit=5, languages=["pl"]) == []


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
    router = load_router(REPO / "models")
    for label in labels:
        model = router.model_for(label.language)
        assert model is not None and label.model_version == model.version
        assert label.predicted_label in {"escalation", "deescalation", "neutral"}
        assert 0 < (label.predicted_probability or 0) <= 1
        assert label.sentence_id is not None and label.labelled_at is not None
    # The end of input ends a session like q; what was answered is kept.
    code, output = _cli(monkeypatch, capsys, db_url, ["label", "--who", "bo"], "d\n")
    assert code == 0 and "saved 1 label(s) as bo" in output
    assert len(load_labels(stored)) == 3


def test_a_scripted_session_in_russian_only(stored, db_url, monkeypatch, capsys) -> None:
    argv = ["label", "--language", "ru", "--who", "ana"]
    code, output = _cli(monkeypatch, capsys, db_url, argv, "e\nn\nq\n")
    assert code == 0, output
    assert output.count("language: Russian (ru)") == 3  # the third is shown, then q
    assert "Новости дня (Пример)" in output
    assert "saved 2 label(s) as ana" in output
    labels = load_labels(stored)
    assert [label.language for label in labels] == ["ru", "ru"]
    assert {label.text for label in labels} <= set(RUSSIAN_TEXTS)
    multi = load_router(REPO / "models").multilingual
    assert multi is not None and {label.model_version for label in labels} == {multi.version}
    with session_scope(stored) as session:  # the label row joins its sentence's language
        joined = session.execute(
            select(Sentence.language).join(Label, Label.sentence_id == Sentence.id)
        ).scalars()
        assert set(joined) == {"ru"}
    # The third Russian sentence comes back; English ones are never asked for.
    code, output = _cli(monkeypatch, capsys, db_url, argv, "n\n")
    assert code == 0 and "saved 1 label(s)" in output
    code, output = _cli(monkeypatch, capsys, db_url, argv, "")
    assert code == 0 and "nothing to label: no unlabelled sentences in ru" in output


def test_an_unknown_language_code_is_a_usage_error(stored, db_url, monkeypatch, capsys) -> None:
    code, output = _cli(monkeypatch, capsys, db_url, ["label", "--language", "ru,de"], "e\n")
    assert code == 2
    assert "'de': not a language the monitor scores; give codes among en, ru, uk, be, pl" in output
    assert load_labels(stored) == []


def test_a_language_without_its_model_is_one_error(
    stored, db_url, tmp_path: Path, monkeypatch, capsys
) -> None:
    english_only = tmp_path / "models"
    english_only.mkdir()
    for path in (REPO / "models").glob("escalation-2.*"):
        (english_only / path.name).symlink_to(path)
    monkeypatch.setenv("ESCMON_MULTI_MODEL_NAME", "")
    code, output = _cli(monkeypatch, capsys, db_url, ["label", "--language", "uk"], "e\n")
    assert code == 1
    assert "Error: --language: no model here reads Ukrainian (uk)" in output


def test_export_then_import_round_trip(stored, db_url, tmp_path, monkeypatch, capsys) -> None:
    _cli(monkeypatch, capsys, db_url, ["label", "--who", "ana"], "e\nn\nd\n")
    exported = tmp_path / "analyst.labels.jsonl"
    code, output = _cli(monkeypatch, capsys, db_url, ["label", "--export", str(exported)])
    assert code == 0 and "wrote 3 label(s)" in output
    rows = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert [list(row) for row in rows] == [["text", "label", "reason", "source", "language"]] * 3
    assert [row["label"] for row in rows] == ["escalation", "neutral", "deescalation"]
    assert all("analyst label by ana" in row["reason"] and "said" in row["reason"] for row in rows)
    assert all(row["source"].startswith("https://") for row in rows)
    assert {row["language"] for row in rows} <= {"en", "ru"}
    languages = {row["text"]: row["language"] for row in rows}
    assert all(languages[text] == "ru" for text in set(languages) & set(RUSSIAN_TEXTS))

    with session_scope(stored) as session:
        session.execute(Label.__table__.delete())
    code, output = _cli(
        monkeypatch, capsys, db_url, ["label", "--import", str(exported), "--who", "ana"]
    )
    assert code == 0 and "3 label(s) stored, 0 already there" in output
    assert import_labels(stored, exported, "ana") == {"read": 3, "imported": 0, "known": 3}
    with session_scope(stored) as session:
        back = session.execute(select(Label.text, Label.label, Label.language, Label.origin)).all()
    assert sorted(tuple(row[:3]) for row in back) == sorted(
        (r["text"], r["label"], r["language"]) for r in rows
    )
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


def test_import_reads_the_language_and_defaults_to_english(stored, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        {"text": "Troops crossed the border.", "label": "escalation"},
        {"text": "Сторони домовилися про перемир'я.", "label": "deescalation", "language": "uk"},
        {"text": "Rozmowy trwały cały dzień.", "label": "neutral", "language": "pl-PL"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert import_labels(stored, path, "ana")["imported"] == 3
    assert [(label.language, label.sentence_id) for label in load_labels(stored)] == [
        ("en", None),
        ("uk", None),
        ("pl", None),
    ]
    # Each model trains on its own languages' labels: English alone by default.
    english = training_rows(stored)
    assert [text for text, _ in english[0] + english[1]] == ["Troops crossed the border."]
    multi = training_rows(stored, ["ru", "uk", "be", "pl"])
    assert len(multi[0] + multi[1]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Panzer rollten.", "label": "escalation", "language": "de"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: 'language' must be one of en, ru, uk"):
        import_labels(stored, bad, "ana")


def test_labels_language_column_migrates_up_and_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'escmon.db'}"
    store.upgrade(url, "0005")
    engine = store.make_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO labels (text, text_sha256, label, labeller, origin, labelled_at) "
                "VALUES ('Troops moved.', 'x', 'escalation', 'ana', 'import', '2024-08-10')"
            )
        store.upgrade(url)
        assert [label.language for label in load_labels(engine)] == ["en"]  # all were English
        store.downgrade(url, "0005")
        with engine.connect() as connection:
            columns = [row[1] for row in connection.exec_driver_sql("PRAGMA table_info(labels)")]
        assert "language" not in columns and "label" in columns
        store.upgrade(url)
    finally:
        engine.dispose()


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
