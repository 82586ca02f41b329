"""The frozen test set loader and the release scores (bootstrap interval, balanced draw)."""

from __future__ import annotations

from collections import Counter

from pipeline.classify import LABELS
from pipeline.evaluation import balanced_indices, load_testset, macro_f1_interval


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
