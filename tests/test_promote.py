"""Model promotion: a candidate replaces the current model only if it is not worse."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.promote import decide


def card(version: str, cv: float, dev: float | None = None, refs: str = "r1") -> dict:
    dev_set = (
        {"status": "scored", "refs_sha256": refs, "macro_f1": dev}
        if dev is not None
        else {"status": "skipped", "reason": "no shared_dir given"}
    )
    return {"version": version, "cross_validation": {"macro_f1": cv}, "dev_set": dev_set}


def test_decide_promotes_the_first_model() -> None:
    decision = decide(card("1.0-a", 0.5), None)
    assert decision.promote and decision.reason == "no current model"


@pytest.mark.parametrize(
    ("new", "old", "action"),
    [(0.81, 0.80, "promote"), (0.80, 0.80, "promote"), (0.79, 0.80, "reject")],
)
def test_decide_promotes_only_when_not_worse(new: float, old: float, action: str) -> None:
    decision = decide(card("1.0-new", new), card("1.0-old", old))
    assert decision.action == action
    assert decision.metric == "cross_validation.macro_f1"
    assert (decision.candidate_score, decision.current_score) == (new, old)


def test_decide_prefers_the_dev_set_when_both_scored_the_same_one() -> None:
    better_cv_worse_dev = decide(card("1.0-new", 0.9, dev=0.6), card("1.0-old", 0.8, dev=0.7))
    assert better_cv_worse_dev.action == "reject"
    assert better_cv_worse_dev.metric == "dev_set.macro_f1"
    other_refs = decide(card("1.0-new", 0.9, dev=0.6), card("1.0-old", 0.8, dev=0.7, refs="r2"))
    assert other_refs.action == "promote"
    assert other_refs.metric == "cross_validation.macro_f1"


def test_decide_same_version_is_unchanged() -> None:
    assert decide(card("1.0-a", 0.8), card("1.0-a", 0.8)).action == "unchanged"


# --- the guard of `escmon train` -------------------------------------------------------------


def _check(name: str, new: float | None, old: float | None, n: int = 100):
    from pipeline.promote import GuardCheck

    return GuardCheck(name, n, new, old)


def test_guard_promotes_only_when_not_worse_on_every_check() -> None:
    from pipeline.promote import guard_decision

    new, old = card("2.0-new", 0.8), card("2.0-old", 0.8)
    both_better = [_check("test_set", 0.74, 0.73), _check("analyst_held_back", 0.6, 0.6)]
    assert guard_decision(both_better, new, old).action == "promote"
    held_back_worse = [_check("test_set", 0.74, 0.73), _check("analyst_held_back", 0.5, 0.6)]
    decision = guard_decision(held_back_worse, new, old)
    assert decision.action == "reject"
    assert decision.reason == "worse on held-back analyst labels (100): 0.5000 vs 0.6000"
    test_worse = guard_decision([_check("test_set", 0.70, 0.73)], new, old)
    assert test_worse.action == "reject" and "frozen test set" in test_worse.reason
    assert (test_worse.candidate_score, test_worse.current_score) == (0.70, 0.73)


def test_guard_without_an_active_model_or_anything_to_compare() -> None:
    from pipeline.promote import guard_decision

    assert guard_decision([], card("2.0-new", 0.8), None).reason == "no active model"
    same = guard_decision([], card("2.0-a", 0.8), card("2.0-a", 0.8))
    assert same.action == "unchanged"
    no_sets = [_check("test_set", None, None, n=0), _check("analyst_held_back", None, None, 0)]
    fallback = guard_decision(no_sets, card("2.0-new", 0.7), card("2.0-old", 0.8))
    assert fallback.action == "reject" and fallback.metric == "cross_validation.macro_f1"
    assert "no test set or held-back labels" in fallback.reason


def test_training_seeds_add_the_analyst_labels_and_keep_held_back_ones_out(tmp_path) -> None:
    import json

    from pipeline.promote import ANALYST_FILE, training_seeds

    seeds = tmp_path / "seeds"
    (seeds / "languages").mkdir(parents=True)
    shipped = seeds / "shipped.labels.jsonl"
    shipped.write_text('{"text": "Troops moved.", "label": "escalation"}\n', encoding="utf-8")
    exported = seeds / "exported.labels.jsonl"  # an analyst's export dropped into seeds/
    exported.write_text(
        '{"text": "Held back.", "label": "neutral"}\n{"text": "Other.", "label": "neutral"}\n',
        encoding="utf-8",
    )
    folder = training_seeds(
        seeds, tmp_path / "train", [("Talks resumed.", "deescalation")], [("Held back.", "neutral")]
    )
    assert (folder / "shipped.labels.jsonl").resolve() == shipped.resolve()  # linked as is
    assert (folder / "languages").is_dir()
    assert (folder / "exported.labels.jsonl").read_text(encoding="utf-8") == (
        '{"text": "Other.", "label": "neutral"}\n'
    )
    rows = [json.loads(line) for line in (folder / ANALYST_FILE).read_text().splitlines()]
    assert [(row["text"], row["label"]) for row in rows] == [("Talks resumed.", "deescalation")]
    plain = training_seeds(seeds, tmp_path / "plain", [], [])
    assert sorted(p.name for p in plain.iterdir()) == sorted(p.name for p in seeds.iterdir())
    assert all(p.is_symlink() for p in plain.iterdir())


# Guarded retraining end to end. A full training takes minutes on a busy machine, so the
# active model here learns from a small part of the shipped labels (600 real-news sentences):
# 50 analyst labels then move its frozen test-set score clearly, one way or the other.
SMALL_SEEDS = ("news_region", "news_ukraine2", "news_world", "news_hard2")
POOL_FILES = ("news_moves2", "news_headlines2", "news_asia", "news_mideast")


def _rows(name: str) -> list[dict]:
    import json

    from tests.conftest import REPO

    path = REPO / "seeds" / f"{name}.labels.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def small_active(tmp_path_factory):
    """Seeds of 600 real-news sentences, the model trained on them, and its weakest class
    on the frozen test set."""
    import json

    from pipeline.classify import evaluate, load_model, train
    from pipeline.promote import english_test_items

    root = tmp_path_factory.mktemp("guard")
    seeds = root / "seeds"
    seeds.mkdir()
    small = [row for name in SMALL_SEEDS for row in _rows(name)[:150]]
    (seeds / "small.labels.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in small), encoding="utf-8"
    )
    train(seeds, root / "models")
    items = english_test_items(None)
    result = evaluate(load_model(root / "models"), [t for t, _ in items], [y for _, y in items])
    weakest = min(result["per_class"], key=lambda lab: result["per_class"][lab]["f1"])
    return seeds, root / "models", weakest


def _retrain_with(labels, small_active, tmp_path, monkeypatch, capsys) -> tuple[str, Path]:
    """Store ``labels`` as an analyst's, run `escmon train`, return its output and models."""
    import json
    import shutil

    from pipeline import store
    from pipeline.cli import main
    from pipeline.config import get_settings
    from pipeline.labelling import import_labels

    seeds, active_models, _ = small_active
    models = tmp_path / "models"
    shutil.copytree(active_models, models)
    url = f"sqlite:///{tmp_path / 'escmon.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    labels_file = tmp_path / "answers.jsonl"
    labels_file.write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in labels), encoding="utf-8"
    )
    assert import_labels(engine, labels_file, "ana")["imported"] == len(labels)
    engine.dispose()
    monkeypatch.setenv("ESCMON_DATABASE_URL", url)
    monkeypatch.setenv("ESCMON_SEEDS_DIR", str(seeds))
    monkeypatch.setenv("ESCMON_MODELS_DIR", str(models))
    get_settings.cache_clear()
    try:
        assert main(["train", "--family", "en", "--no-devset"]) == 0
    finally:
        get_settings.cache_clear()
    return capsys.readouterr().out, models


@pytest.mark.slow
def test_a_retrain_on_50_wrong_labels_is_not_promoted(
    small_active, tmp_path, monkeypatch, capsys
) -> None:
    import json

    from pipeline.classify import load_model

    _, active_models, _ = small_active
    before = load_model(active_models).version
    calm = [row for name in POOL_FILES for row in _rows(name) if row["label"] == "deescalation"]
    wrong = [(row["text"], "escalation") for row in calm[:50]]  # talks and truces as escalation
    output, models = _retrain_with(wrong, small_active, tmp_path, monkeypatch, capsys)
    assert "not promoted, kept as a candidate: worse on frozen test set" in output
    assert load_model(models).version == before  # still the active model
    [candidate_card] = (models / "candidates").glob("*.card.json")
    promotion = json.loads(candidate_card.read_text(encoding="utf-8"))["promotion"]
    assert promotion["action"] == "reject" and promotion["against"] == before
    checks = {check["name"]: check for check in promotion["checks"]}
    assert checks["test_set"]["candidate"] < checks["test_set"]["active"]
    assert checks["analyst_held_back"]["n"] == promotion["analyst_labels"]["held_back"] > 0
    markdown = candidate_card.with_name(candidate_card.name.replace(".json", ".md"))
    assert "## Promotion" in markdown.read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_retrain_on_correct_labels_of_the_weak_class_is_promoted(
    small_active, tmp_path, monkeypatch, capsys
) -> None:
    import json

    from pipeline.classify import load_model

    _, active_models, weakest = small_active
    before = load_model(active_models).version
    rows = [row for name in POOL_FILES for row in _rows(name) if row["label"] == weakest]
    # Drawn evenly across the four files: the class as the news at large shows it (the first
    # 50 of one file, or only sentences the model got wrong, can tilt it and score lower).
    correct = [(row["text"], row["label"]) for row in rows[:: len(rows) // 50][:50]]
    output, models = _retrain_with(correct, small_active, tmp_path, monkeypatch, capsys)
    assert "active now: not worse on frozen test set" in output
    now = load_model(models)
    assert now.version != before
    promotion = now.card["promotion"]
    assert promotion["action"] == "promote" and promotion["analyst_labels"]["train"] > 0
    assert not (models / "candidates").exists()
    assert json.loads((models / "promotions.jsonl").read_text().splitlines()[-1])["action"] == (
        "promote"
    )
