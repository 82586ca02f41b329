"""Retraining: train a candidate model, promote it only if it is not worse.

Used by ``dags/retrain_model.py``. The candidate is trained into a staging
folder under the models folder, named after the run (:func:`staging_dir`), so the
two steps share it by the run's id, not by passing a path; its card is compared with
the current model's on the dev set when both scored the same one, else on
cross-validation; the decision is appended to ``<models>/promotions.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings

if TYPE_CHECKING:
    from pipeline.classify import Classifier

STAGING = ".staging"
DECISIONS_FILE = "promotions.jsonl"

log = logging.getLogger(__name__)


# --- the decision (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    action: str  # promote | reject | unchanged
    reason: str
    metric: str | None = None
    candidate_score: float | None = None
    current_score: float | None = None
    candidate_version: str | None = None
    current_version: str | None = None

    @property
    def promote(self) -> bool:
        return self.action == "promote"


def comparable_metric(candidate: dict[str, Any], current: dict[str, Any]) -> str:
    """The card metric both models were scored on: the dev set if the same one, else CV."""
    dev_a, dev_b = candidate.get("dev_set") or {}, current.get("dev_set") or {}
    same_dev = dev_a.get("status") == dev_b.get("status") == "scored" and dev_a.get(
        "refs_sha256"
    ) == dev_b.get("refs_sha256")
    return "dev_set" if same_dev else "cross_validation"


def decide(candidate: dict[str, Any], current: dict[str, Any] | None) -> Decision:
    """Promote the candidate card unless the current model scores better on the same metric."""
    versions: dict[str, Any] = {"candidate_version": candidate.get("version")}
    if current is None:
        return Decision("promote", "no current model", **versions)
    versions["current_version"] = current.get("version")
    if candidate.get("version") == current.get("version"):
        return Decision("unchanged", "same data and parameters as the current model", **versions)
    metric = comparable_metric(candidate, current)
    new = float(candidate[metric]["macro_f1"])
    old = float(current[metric]["macro_f1"])
    scores: dict[str, Any] = {
        "metric": f"{metric}.macro_f1",
        "candidate_score": new,
        "current_score": old,
    }
    if new >= old:
        return Decision("promote", f"not worse: {new:.4f} >= {old:.4f}", **scores, **versions)
    return Decision("reject", f"worse: {new:.4f} < {old:.4f}", **scores, **versions)


# --- files -------------------------------------------------------------------------------


def model_files(folder: Path, card: dict[str, Any]) -> list[Path]:
    """The files of the model ``card`` describes: cards first, the ``.skops`` last."""
    stem = Path(card["model_file"]).stem
    return [folder / f"{stem}.card.json", folder / f"{stem}.card.md", folder / card["model_file"]]


def install(files: list[Path], models_dir: Path) -> list[Path]:
    """Copy ``files`` into ``models_dir``, each under a hidden name then renamed (atomic)."""
    installed = []
    for source in files:
        target = models_dir / source.name
        partial = models_dir / f".{source.name}.partial"
        shutil.copy2(source, partial)
        os.replace(partial, target)
        installed.append(target)
    return installed


def record(models_dir: Path, decision: Decision, run_id: str) -> None:
    """Append the decision to ``promotions.jsonl`` (one JSON object a line)."""
    entry = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        **asdict(decision),
    }
    with (models_dir / DECISIONS_FILE).open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def current_card(models_dir: Path, name: str) -> dict[str, Any] | None:
    """The card of the model the classify stage would load now (None if there is none)."""
    from pipeline.classify import ModelNotFoundError, load_model

    try:
        return load_model(models_dir, name).card or None
    except ModelNotFoundError:
        return None


# --- the two steps -------------------------------------------------------------------------------


def staging_dir(settings: Settings, run_id: str) -> Path:
    """The staging folder of run ``run_id``'s candidate (under the models folder)."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)[:120] or "run"
    return Path(settings.models_dir) / STAGING / f"candidate-{safe}"


def staged_candidate(settings: Settings, run_id: str) -> dict[str, str]:
    """The candidate :func:`train_candidate` staged for ``run_id`` (its folder and card)."""
    from pipeline.errors import EscmonError

    staging = staging_dir(settings, run_id)
    cards = sorted(staging.glob("*.card.json"))
    if len(cards) != 1:
        raise EscmonError(
            f"no trained candidate in {staging} (found {len(cards)} cards); "
            "run the train step of this run again"
        )
    return {"staging": str(staging), "card": str(cards[0])}


def train_candidate(
    settings: Settings, shared_dir: Path | None = None, *, run_id: str | None = None
) -> dict[str, str]:
    """Train on the seeds into a staging folder; returns the folder, card file and version.

    With ``run_id`` the folder is :func:`staging_dir` (emptied first: a retry starts over),
    else a fresh temporary one.
    """
    from pipeline.classify import train

    staging_root = Path(settings.models_dir) / STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    if run_id is None:
        staging = Path(tempfile.mkdtemp(prefix="candidate-", dir=staging_root))
    else:
        staging = staging_dir(settings, run_id)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    try:
        card = train(
            Path(settings.seeds_dir), staging, name=settings.model_name, shared_dir=shared_dir
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("trained candidate %s in %s", card.version, staging)
    return {
        "staging": str(staging),
        "card": str(model_files(staging, asdict(card))[0]),
        "version": card.version,
    }


def promote_if_not_worse(
    settings: Settings, candidate: dict[str, str], run_id: str, *, install_it: bool = True
) -> dict[str, Any]:
    """Compare the candidate with the current model, install it if not worse, log why.

    ``install_it=False`` records the decision (``dry_run`` in the log) without installing.
    """
    models_dir = Path(settings.models_dir)
    staging = Path(candidate["staging"])
    card = json.loads(Path(candidate["card"]).read_text(encoding="utf-8"))
    decision = decide(card, current_card(models_dir, settings.model_name))
    if not install_it and decision.promote:
        decision = Decision(**{**asdict(decision), "action": "dry_run"})
    if decision.promote:
        install(model_files(staging, card), models_dir)
    record(models_dir, decision, run_id)
    log.info("model %s: %s (%s)", card["version"], decision.action, decision.reason)
    # Only now: a retry of this task after a failure above still finds the candidate.
    shutil.rmtree(staging, ignore_errors=True)
    return asdict(decision)


# --- the guard of `escmon train`: analyst labels, frozen test set, held-back fifth ---------------

CANDIDATES_DIR = "candidates"  # under the models folder: trained, not active (never loaded)
ANALYST_FILE = "analyst.labels.jsonl"


@dataclass(frozen=True)
class GuardCheck:
    """Macro-F1 of the candidate and the active model on one labelled set."""

    name: str  # test_set | analyst_held_back
    n: int
    candidate: float | None
    active: float | None

    @property
    def usable(self) -> bool:
        return self.n > 0 and self.candidate is not None and self.active is not None

    @property
    def worse(self) -> bool:
        return self.usable and float(self.candidate or 0) < float(self.active or 0)

    def describe(self) -> str:
        label = {"test_set": "frozen test set", "analyst_held_back": "held-back analyst labels"}
        if not self.usable:
            return f"{label.get(self.name, self.name)}: not available"
        return (
            f"{label.get(self.name, self.name)} ({self.n}): "
            f"{self.candidate:.4f} vs {self.active:.4f}"
        )


def guard_decision(
    checks: Sequence[GuardCheck],
    candidate: dict[str, Any],
    active: dict[str, Any] | None,
) -> Decision:
    """Promote the candidate card only if it is not worse on every check it could be scored
    on; with no check available, fall back to :func:`decide` (dev set or CV on the cards)."""
    versions: dict[str, Any] = {
        "candidate_version": candidate.get("version"),
        "current_version": (active or {}).get("version"),
    }
    if active is None:
        return Decision("promote", "no active model", **versions)
    if candidate.get("version") == active.get("version"):
        return Decision("unchanged", "same data and parameters as the active model", **versions)
    usable = [check for check in checks if check.usable]
    if not usable:
        if "cross_validation" not in active:
            return Decision("promote", "nothing to compare on: no test set or cards", **versions)
        fallback = decide(candidate, active)
        return replace(fallback, reason=f"{fallback.reason} (no test set or held-back labels)")
    first = usable[0]
    scores: dict[str, Any] = {
        "metric": "+".join(f"{check.name}.macro_f1" for check in usable),
        "candidate_score": first.candidate,
        "current_score": first.active,
    }
    worse = [check for check in usable if check.worse]
    if worse:
        reason = "worse on " + "; ".join(check.describe() for check in worse)
        return Decision("reject", reason, **scores, **versions)
    reason = "not worse on " + "; ".join(check.describe() for check in usable)
    return Decision("promote", reason, **scores, **versions)


def guard_checks(
    candidate: Classifier,
    active: Classifier | None,
    test_items: Sequence[tuple[str, str]],
    held_back: Sequence[tuple[str, str]],
) -> list[GuardCheck]:
    """Score both models on the frozen test set and on the held-back analyst labels
    (macro-F1 over the classes the set holds: a few held-back labels may hold one or two)."""
    checks = []
    for name, items in (("test_set", test_items), ("analyst_held_back", held_back)):
        texts, labels = [text for text, _ in items], [label for _, label in items]
        if not items or active is None:
            checks.append(GuardCheck(name, len(items), None, None))
            continue
        checks.append(
            GuardCheck(
                name,
                len(items),
                macro_f1(candidate, texts, labels),
                macro_f1(active, texts, labels),
            )
        )
    return checks


def macro_f1(classifier: Classifier, texts: Sequence[str], labels: Sequence[str]) -> float:
    """Macro-F1 over the classes present in ``labels`` (4 decimals, as model cards)."""
    from sklearn.metrics import f1_score

    predicted = [prediction.label for prediction in classifier.predict(texts)]
    present = sorted(set(labels))
    value = f1_score(labels, predicted, labels=present, average="macro", zero_division=0)
    return round(float(value), 4)


def english_test_items(
    testset_dir: Path | None, shared_dir: Path | None = None
) -> list[tuple[str, str]]:
    """The English part of the frozen test set (``dev/``), or nothing where it is absent."""
    from pipeline.evaluation import DEV_DIR, load_testset

    folder = DEV_DIR if testset_dir is None else Path(testset_dir)
    if not folder.is_dir():
        return []
    items = load_testset(folder, shared_dir)
    return [(item.text, item.label) for item in items if item.language == "en"]


def training_seeds(
    seeds_dir: Path,
    folder: Path,
    analyst: Sequence[tuple[str, str]],
    held_back: Sequence[tuple[str, str]],
) -> Path:
    """A seeds folder for training: every entry of ``seeds_dir`` (linked), plus the analyst
    labels to train on as ``analyst.labels.jsonl``.

    A labels file of ``seeds_dir`` holding an analyst's text (an exported labels file, say)
    is copied without those lines: the store's label wins, and a held-back sentence never
    reaches training. Without analyst labels the folder is the seeds as they are.
    """
    from pipeline.labelling import text_sha256

    folder.mkdir(parents=True)
    known = {text_sha256(text) for text, _ in [*analyst, *held_back]}
    for entry in sorted(Path(seeds_dir).iterdir()):
        target = folder / entry.name
        if known and entry.name.endswith(".labels.jsonl") and entry.is_file():
            lines = entry.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if not _line_text_in(line, known)]
            if len(kept) < len(lines):
                target.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
                continue
        target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    if analyst:
        if (folder / ANALYST_FILE).exists():
            (folder / ANALYST_FILE).unlink()
        rows = [
            {"text": text, "label": label, "reason": "analyst label"} for text, label in analyst
        ]
        (folder / ANALYST_FILE).write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
        )
    return folder


def _line_text_in(line: str, hashes: set[str]) -> bool:
    from pipeline.labelling import text_sha256

    try:
        text = json.loads(line).get("text")
    except (json.JSONDecodeError, AttributeError):
        return False  # training reports the broken line with its file and number
    return isinstance(text, str) and text_sha256(text) in hashes


@dataclass(frozen=True)
class GuardOutcome:
    decision: Decision
    checks: list[GuardCheck]
    card: dict[str, Any]
    location: Path  # where the candidate's model file now is
    analyst_train: int
    analyst_held_back: int

    @property
    def active(self) -> bool:
        return self.decision.promote


def _note_in_card(staging: Path, card: dict[str, Any], promotion: dict[str, Any]) -> dict[str, Any]:
    """Write the comparison into the candidate's cards (JSON and Markdown)."""
    json_card, md_card, _ = model_files(staging, card)
    card = {**card, "promotion": promotion}
    json_card.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = [
        "",
        "## Promotion",
        "",
        f"{promotion['action']}: {promotion['reason']}.",
        f"Against the active model {promotion['against'] or '(none)'}; analyst labels: "
        f"{promotion['analyst_labels']['train']} trained on, "
        f"{promotion['analyst_labels']['held_back']} held back.",
        "",
        "| check | sentences | this model | active model |",
        "|---|---|---|---|",
        *[
            f"| {c['name']} | {c['n']} | {_f1(c['candidate'])} | {_f1(c['active'])} |"
            for c in promotion["checks"]
        ],
        "",
    ]
    with md_card.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines))
    return card


def _f1(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def guarded_train(
    settings: Settings,
    *,
    analyst: Sequence[tuple[str, str]] = (),
    held_back: Sequence[tuple[str, str]] = (),
    shared_dir: Path | None = None,
    testset_dir: Path | None = None,
    run_id: str = "escmon-train",
) -> GuardOutcome:
    """Train on the seeds plus the analyst labels; make the model active only if it is not
    worse than the active one on the frozen test set and on the held-back analyst labels.

    The comparison goes into the new model's card and ``promotions.jsonl``. A model that
    is not promoted stays a candidate in ``<models>/candidates/`` (never loaded).
    """
    from pipeline.classify import ModelNotFoundError, load_model, train

    models_dir = Path(settings.models_dir)
    staging_root = models_dir / STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="guarded-", dir=staging_root))
    try:
        seeds = training_seeds(Path(settings.seeds_dir), staging / "seeds", analyst, held_back)
        trained = asdict(train(seeds, staging, name=settings.model_name, shared_dir=shared_dir))
        try:
            active: Classifier | None = load_model(models_dir, settings.model_name)
        except ModelNotFoundError:
            active = None
        candidate = load_model(staging, settings.model_name)
        checks = (
            guard_checks(
                candidate, active, english_test_items(testset_dir, shared_dir), list(held_back)
            )
            if active is not None and active.version != candidate.version
            else []
        )
        active_card = (active.card or {"version": active.version}) if active else None
        decision = guard_decision(checks, trained, active_card)
        promotion = {
            "action": decision.action,
            "reason": decision.reason,
            "against": active.version if active else None,
            "decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "analyst_labels": {"train": len(analyst), "held_back": len(held_back)},
            "checks": [asdict(check) for check in checks],
        }
        card = _note_in_card(staging, trained, promotion)
        if decision.action == "unchanged":
            location = models_dir / card["model_file"]
        else:
            target = models_dir if decision.promote else models_dir / CANDIDATES_DIR
            target.mkdir(parents=True, exist_ok=True)
            location = install(model_files(staging, card), target)[-1]
        record(models_dir, decision, run_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("model %s: %s (%s)", card["version"], decision.action, decision.reason)
    return GuardOutcome(decision, checks, card, location, len(analyst), len(held_back))
