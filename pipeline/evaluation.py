"""The frozen test set and how a model release is scored on it (see ``dev/README.md``).

Development-time only: the product never reads ``dev/``. The English page part and the
per-language sets ship as close paraphrases in ``dev/testset_*.jsonl``; the feed part is
stored as references into the shared feed corpus (``dev/testset_feeds_refs.jsonl``) and
is scored only when ``shared_dir`` is given.

A release is scored once (``scripts/evaluate_release.py``): macro-F1 with a 95%
bootstrap interval on the whole set and on a class-balanced draw, per class, per source
family and per language, and how well its probabilities are calibrated
(:func:`calibration`). Nobody reads the test set's errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pipeline.classify import LABELS, Classifier, calibration, scores
from pipeline.language import MULTI_LANGUAGES

DEV_DIR = Path(__file__).resolve().parents[1] / "dev"
BOOTSTRAP_RESAMPLES = 2000


class TestItem(NamedTuple):
    text: str
    label: str
    family: str  # pages | feeds | ru | uk | be | pl
    language: str


def load_testset(dev_dir: Path = DEV_DIR, shared_dir: Path | None = None) -> list[TestItem]:
    """Every frozen test sentence, English first (pages, then feeds), then each language."""
    items = [
        TestItem(row["text"], row["label"], "pages", "en")
        for path in sorted(dev_dir.glob("testset_pages.part*.jsonl"))
        for row in _jsonl(path)
    ]
    refs = dev_dir / "testset_feeds_refs.jsonl"
    if shared_dir is not None and refs.is_file():
        from pipeline.devset import load_devset

        items += [TestItem(s.text, s.label, "feeds", "en") for s in load_devset(shared_dir, refs)]
    for language in MULTI_LANGUAGES:
        path = dev_dir / f"testset_{language}.jsonl"
        if path.is_file():
            items += [TestItem(r["text"], r["label"], language, language) for r in _jsonl(path)]
    return items


def _jsonl(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def macro_f1_interval(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile bootstrap interval of macro-F1 (sentences resampled with replacement)."""
    from sklearn.metrics import f1_score

    true, pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    values = [
        f1_score(true[idx], pred[idx], labels=list(LABELS), average="macro", zero_division=0)
        for idx in (rng.integers(0, len(true), len(true)) for _ in range(resamples))
    ]
    low, high = np.percentile(values, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def balanced_indices(labels: Sequence[str], seed: int = 0) -> list[int]:
    """A class-balanced draw: per class, a seeded sample as large as the rarest class."""
    rng = np.random.default_rng(seed)
    by_class = {lab: [i for i, y in enumerate(labels) if y == lab] for lab in LABELS}
    n = min(len(ids) for ids in by_class.values())
    return sorted(int(i) for ids in by_class.values() for i in rng.choice(ids, n, replace=False))


def _scored(
    y_true: list[str], y_pred: list[str], proba: np.ndarray | None = None
) -> dict[str, Any]:
    result = scores(y_true, y_pred)
    if len(set(y_true)) > 1:
        result["macro_f1_95ci"] = list(macro_f1_interval(y_true, y_pred))
    if proba is not None:
        result["calibration"] = calibration(y_true, proba)
    return result


def _predict(classifier: Classifier, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Labels and probabilities (:data:`LABELS` order), both from ``classifier.predict``."""
    predictions = classifier.predict(texts)
    proba = np.asarray(
        [(p.p_escalation, p.p_deescalation, p.p_neutral) for p in predictions], dtype=np.float64
    ).reshape(-1, len(LABELS))
    return [p.label for p in predictions], proba


def score_release(classifier: Classifier, items: Sequence[TestItem]) -> dict[str, Any]:
    """The test-set section of a model card."""
    preds, proba = _predict(classifier, [item.text for item in items])
    truth = [item.label for item in items]

    def subset(keep: Sequence[int]) -> dict[str, Any]:
        return _scored([truth[i] for i in keep], [preds[i] for i in keep], proba[list(keep)])

    english = [i for i, item in enumerate(items) if item.language == "en"]
    balanced = [english[i] for i in balanced_indices([truth[i] for i in english])]
    families = sorted({item.family for item in items})
    return {
        "status": "scored",
        "model_version": classifier.version,
        "english": subset(english),
        "english_balanced": subset(balanced),
        "by_family": {
            family: subset([i for i, item in enumerate(items) if item.family == family])
            for family in families
        },
    }


def score_languages(classifier: Classifier, items: Sequence[TestItem]) -> dict[str, Any]:
    """The test-set section of the multilingual model's card: each of its languages."""
    mine = [item for item in items if item.language in MULTI_LANGUAGES]
    preds, proba = _predict(classifier, [item.text for item in mine])
    truth = [item.label for item in mine]

    def subset(language: str) -> dict[str, Any]:
        keep = [i for i, item in enumerate(mine) if item.language == language]
        return _scored([truth[i] for i in keep], [preds[i] for i in keep], proba[keep])

    return {
        "status": "scored",
        "model_version": classifier.version,
        "all": _scored(truth, preds, proba),
        "by_language": {
            language: subset(language)
            for language in MULTI_LANGUAGES
            if any(item.language == language for item in mine)
        },
    }
