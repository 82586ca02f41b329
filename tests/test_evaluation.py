"""The frozen test set loader and the release scores (bootstrap interval, balanced draw)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from pipeline.classify import LABELS
from pipeline.evaluation import balanced_indices, calibration, load_testset, macro_f1_interval


def test_the_test_set_is_large_enough_per_class_and_language(shared_dir) -> None:
    items = load_testset(shared_dir=shared_dir)
    english = Counter(item.label for item in items if item.language == "en")
    assert sum(english.values()) >= 600
    assert min(english[label] for label in LABELS) >= 150
    families = Counter(item.family for item in items)
    assert families["feeds"] == 197 and families["pages"] > 800
    assert {"ru", "uk", "pl"} <= set(families)


def test_no_test_sentence_is_a_training_sentence(shared_dir) -> None:
    from pipeline.classify import load_training_data
    from tests.conftest import REPO

    train = {text.casefold() for text, _ in load_training_data(REPO / "seeds")}
    overlap = [i.text for i in load_testset(shared_dir=shared_dir) if i.text.casefold() in train]
    assert overlap == []


def test_bootstrap_interval_brackets_the_score_and_narrows_with_data() -> None:
    truth = list(LABELS) * 40
    pred = truth[:100] + ["neutral"] * 20
    low, high = macro_f1_interval(truth, pred, resamples=300)
    assert 0 < low < high < 1
    assert macro_f1_interval(truth, truth, resamples=50) == (1, 1)


def test_balanced_draw_takes_the_rarest_class_size_from_each() -> None:
    labels = ["escalation"] * 5 + ["deescalation"] * 9 + ["neutral"] * 30
    picked = balanced_indices(labels)
    assert Counter(labels[i] for i in picked) == dict.fromkeys(LABELS, 5)
    assert picked == balanced_indices(labels)  # seeded


def test_no_language_test_sentence_is_a_training_sentence(shared_dir) -> None:
    from pipeline.classify import load_training_data
    from tests.conftest import REPO

    train = {text.casefold() for text, _ in load_training_data(REPO / "seeds" / "languages")}
    tests = [i.text for i in load_testset(shared_dir=shared_dir) if i.language != "en"]
    assert len(tests) > 800
    assert [text for text in tests if text.casefold() in train] == []


def test_language_scores_go_per_language_into_the_card() -> None:
    """Scored on made-up items (the frozen set is scored by scripts/evaluate_release.py)."""
    from pipeline.classify import Classifier, ModelCard, _card_markdown, build_pipeline
    from pipeline.evaluation import TestItem, score_languages

    texts = {
        "escalation": ["Войска обстреляли город.", "Wojska ostrzelały miasto."],
        "deescalation": ["Стороны обменялись пленными.", "Strony wymieniły jeńców."],
        "neutral": ["Музей открылся после ремонта.", "Muzeum otwarto po remoncie."],
    }
    rows = [(t, label) for label, ts in texts.items() for t in ts]
    model = build_pipeline(family="multi").fit([t for t, _ in rows] * 3, [y for _, y in rows] * 3)
    items = [
        TestItem(t, label, lang, lang)
        for label, ts in texts.items()
        for t, lang in zip(ts, ["ru", "pl"], strict=True)
    ] + [TestItem("Troops withdrew.", "deescalation", "pages", "en")]
    result = score_languages(Classifier(model, "1.0-0123456789"), items)
    assert set(result["by_language"]) == {"ru", "pl"}
    assert result["all"]["n"] == 6 and result["by_language"]["ru"]["n"] == 3
    card = ModelCard(
        name="escalation-multi",
        version="1.0-0123456789",
        model_file="m.skops",
        trained_at="",
        training_seconds=0,
        training_data={"sources": "x", "files": [], "label_counts": {}},
        model={"pipeline": "p", "lexicon_sha256": None},
        cross_validation=score_like(result["all"]),
        dev_set={"status": "skipped", "reason": "none"},
        libraries={},
        test_set=result,
    )
    markdown = _card_markdown(card)
    assert "| ru | 3 |" in markdown and "| pl | 3 |" in markdown
    assert result["by_language"]["ru"]["calibration"]["escalation_observed"] == 1
    assert "Test set, ru, calibration: expected calibration error" in markdown


def test_calibration_error_is_zero_when_confidence_matches_accuracy() -> None:
    """Top probability 0.75 right three times in four: calibrated; claimed 1.0, it is not."""
    truth = ["escalation", "escalation", "escalation", "neutral"]
    sure_of_escalation = np.tile([0.75, 0.05, 0.20], (4, 1))
    cal = calibration(truth, sure_of_escalation)
    assert cal["ece"] == 0 and cal["accuracy"] == 0.75 and cal["mean_confidence"] == 0.75
    assert cal["escalation_expected"] == 3.0 and cal["escalation_observed"] == 3
    overconfident = calibration(truth, np.tile([1.0, 0.0, 0.0], (4, 1)))
    assert overconfident["ece"] == 0.25


def score_like(result: dict) -> dict:
    return {**result, "folds": 5, "seed": 0, "per_fold_macro_f1": []}
