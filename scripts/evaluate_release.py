"""Score a model release once on the frozen test set and write it into the model card.

The rule (dev/README.md, evaluation protocol): the test set is touched once per model
release, by this script only, and nobody reads its errors; it prints the scores, never
the sentences.

    python scripts/evaluate_release.py [MODELS_DIR] [--shared ../shared]
    python scripts/evaluate_release.py [MODELS_DIR] --multilingual   # ru, uk, be, pl sets
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.classify import MULTI_MODEL_NAME, ModelCard, load_model
from pipeline.evaluation import load_testset, score_languages, score_release

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models_dir", nargs="?", type=Path, default=REPO / "models")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument(
        "--multilingual",
        action="store_true",
        help="score the multilingual model on the Russian, Ukrainian, Belarusian and Polish sets",
    )
    args = parser.parse_args()
    if args.multilingual:
        _multilingual(args.models_dir)
        return
    classifier = load_model(args.models_dir)
    shared = args.shared if (args.shared / "corpora").is_dir() else None
    result = score_release(classifier, load_testset(shared_dir=shared))
    card_path = _write_card(args.models_dir, classifier.version, result)
    english, balanced = result["english"], result["english_balanced"]
    print(f"model {classifier.version}")
    print(
        f"English test: macro-F1 {english['macro_f1']} {english.get('macro_f1_95ci')} "
        f"(n={english['n']}); balanced {balanced['macro_f1']} {balanced.get('macro_f1_95ci')}"
    )
    for family, scores in result["by_family"].items():
        per_class = {k: v["f1"] for k, v in scores["per_class"].items()}
        print(f"  {family:6s} n={scores['n']:4d} macro-F1 {scores['macro_f1']} {per_class}")
    print(f"card updated: {card_path}")


def _write_card(models_dir: Path, version: str, result: dict) -> Path:
    card_path = next(models_dir.glob(f"*-{version}.card.json"))
    card = ModelCard(**json.loads(card_path.read_text(encoding="utf-8")))
    card.test_set = result
    card_path.write_text(card.to_json(), encoding="utf-8")
    card_path.with_suffix("").with_suffix(".card.md").write_text(card.to_markdown(), "utf-8")
    return card_path


def _multilingual(models_dir: Path) -> None:
    classifier = load_model(models_dir, MULTI_MODEL_NAME)
    result = score_languages(classifier, load_testset(shared_dir=None))
    print(f"model {MULTI_MODEL_NAME} {classifier.version}")
    for language, scores in [*result["by_language"].items(), ("all", result["all"])]:
        per_class = {k: v["f1"] for k, v in scores["per_class"].items()}
        print(
            f"  {language:4s} n={scores['n']:4d} macro-F1 {scores['macro_f1']} "
            f"{scores.get('macro_f1_95ci')} {per_class}"
        )
    print(f"card updated: {_write_card(models_dir, classifier.version, result)}")


if __name__ == "__main__":
    main()
