"""Retraining: train a candidate model, make it active only if it is not worse.

Used by ``escmon train`` and ``dags/retrain_model.py`` (:func:`guarded_train`, per model
family). Everything is written into the data folder (``ESCMON_DATA_DIR``), never into the
shipped ``models/``: a candidate is trained in ``<data>/models/.staging/``, compared with
the active model (the data folder's newest that loads, else the shipped one) on the
frozen test set and on the held-back fifth of the analyst's labels, then installed into
``<data>/models/`` (promoted) or ``<data>/models/candidates/`` (kept, never loaded); the
decision is appended to ``<data>/models/promotions.jsonl``. :func:`decide` compares two
model cards when there is no labelled set to score both models on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.language import LANGUAGES_SUBDIR, MULTI_LANGUAGES, family_labels_dir
from pipeline.parallel import worker_count

if TYPE_CHECKING:
    from pipeline.classify import Classifier, ModelCard, ModelDirs

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


def current_card(models_dir: ModelDirs, name: str) -> dict[str, Any] | None:
    """The card of the model the classify stage would load now (None if there is none)."""
    from pipeline.classify import ModelNotFoundError, load_model

    try:
        return load_model(models_dir, name).card or None
    except ModelNotFoundError:
        return None


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
    return family_test_items("en", testset_dir, shared_dir)


def family_test_items(
    family: str, testset_dir: Path | None, shared_dir: Path | None = None
) -> list[tuple[str, str]]:
    """The frozen test set's sentences in the languages of model ``family`` (``en``:
    English; ``multi``: Russian, Ukrainian, Belarusian, Polish), or nothing without ``dev/``."""
    from pipeline.evaluation import DEV_DIR, load_testset

    folder = DEV_DIR if testset_dir is None else Path(testset_dir)
    if not folder.is_dir():
        return []
    languages = family_languages(family)
    items = load_testset(folder, shared_dir if family == "en" else None)
    return [(item.text, item.label) for item in items if item.language in languages]


FAMILIES = ("en", "multi")


def family_languages(family: str) -> tuple[str, ...]:
    """The languages model ``family`` reads (its analyst labels and test sentences)."""
    if family == "en":
        return ("en",)
    if family == "multi":
        return MULTI_LANGUAGES
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def family_model_name(settings: Settings, family: str) -> str:
    family_languages(family)  # checks the name
    return settings.model_name if family == "en" else settings.multi_model_name


# An analyst label as training sees it: (text, label), or (text, label, language).
AnalystRow = tuple[str, ...]


def analyst_rows(
    database_url: str, family: str
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """The stored analyst labels in ``family``'s languages as ``(text, label, language)``:
    those to train on and the held-back fifth (none without a store or labels)."""
    from pipeline.labelling import stored_training_rows

    train: list[tuple[str, str, str]] = []
    held: list[tuple[str, str, str]] = []
    for language in family_languages(family):
        rows, back = stored_training_rows(database_url, (language,))
        train += [(text, label, language) for text, label in rows]
        held += [(text, label, language) for text, label in back]
    return train, held


def training_seeds(
    seeds_dir: Path,
    folder: Path,
    analyst: Sequence[AnalystRow],
    held_back: Sequence[AnalystRow],
    *,
    family: str = "en",
) -> Path:
    """A seeds folder for training ``family``: every entry of ``seeds_dir`` (linked), plus
    the analyst labels to train on as ``analyst.labels.jsonl``: in the folder itself for
    the English model, in ``languages/`` (with each row's ``language``) for the
    multilingual one, whose ``languages/`` is then a folder of links too.

    A labels file holding an analyst's text (an exported labels file, say) is copied
    without those lines: the store's label wins, and a held-back sentence never reaches
    training. Without analyst labels the folder is the seeds as they are.
    """
    from pipeline.labelling import text_sha256

    known = {text_sha256(row[0]) for row in [*analyst, *held_back]}
    if family == "multi" and known:
        _linked_seeds(Path(seeds_dir), folder, known, skip={LANGUAGES_SUBDIR})
        target = _linked_seeds(Path(seeds_dir) / LANGUAGES_SUBDIR, folder / LANGUAGES_SUBDIR, known)
    else:
        target = _linked_seeds(Path(seeds_dir), folder, known)
    if analyst:
        if (target / ANALYST_FILE).exists():
            (target / ANALYST_FILE).unlink()
        rows = [_analyst_json(row, with_language=family == "multi") for row in analyst]
        (target / ANALYST_FILE).write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
        )
    return folder


def _linked_seeds(
    source: Path, folder: Path, known: set[str], skip: frozenset[str] | set[str] = frozenset()
) -> Path:
    """``folder`` with a link to each entry of ``source`` (but ``skip``); labels files that
    hold a text of ``known`` are copied without those lines."""
    folder.mkdir(parents=True)
    for entry in sorted(source.iterdir()) if source.is_dir() else []:
        if entry.name in skip:
            continue
        target = folder / entry.name
        if known and entry.name.endswith(".labels.jsonl") and entry.is_file():
            lines = entry.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if not _line_text_in(line, known)]
            if len(kept) < len(lines):
                target.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
                continue
        target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return folder


def _analyst_json(row: AnalystRow, *, with_language: bool) -> dict[str, str]:
    out = {"text": row[0], "label": row[1], "reason": "analyst label"}
    if with_language:
        out["language"] = row[2] if len(row) > 2 else ""
    return out


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
    family: str = "en"

    @property
    def active(self) -> bool:
        return self.decision.promote

    def summary(self) -> dict[str, Any]:
        """The comparison as plain JSON values (no local path: an Airflow XCom may be read
        on another worker), for the retrain mail and the Dag's asset event."""
        return {
            "family": self.family,
            "name": self.card.get("name"),
            "model_file": self.card.get("model_file"),
            "decision": asdict(self.decision),
            "checks": [asdict(check) for check in self.checks],
            "analyst_labels": {"train": self.analyst_train, "held_back": self.analyst_held_back},
        }


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
    family: str = "en",
    analyst: Sequence[AnalystRow] = (),
    held_back: Sequence[AnalystRow] = (),
    shared_dir: Path | None = None,
    testset_dir: Path | None = None,
    run_id: str = "escmon-train",
    install_it: bool = True,
) -> GuardOutcome:
    """Train model ``family`` (``en`` on ``seeds/``, ``multi`` on ``seeds/languages/``) plus
    the analyst labels in its languages; make it active only if it is not worse than the
    active one on the frozen test set and on the held-back analyst labels.

    Everything goes into the data folder (``settings.runtime_models_dir``): the promoted
    model, or a candidate in ``candidates/`` (never loaded); the comparison into the new
    model's card and ``promotions.jsonl``. ``install_it=False`` decides and records
    (``dry_run``) but keeps the model a candidate.
    """
    _require_seed_labels(Path(settings.seeds_dir), family)
    models_dir = settings.runtime_models_dir
    name = family_model_name(settings, family)
    staging_root = models_dir / STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"guarded-{family}-", dir=staging_root))
    try:
        seeds = training_seeds(
            Path(settings.seeds_dir), staging / "seeds", analyst, held_back, family=family
        )
        trained = asdict(train_family(settings, family, seeds, staging, shared_dir))
        decision, checks, active_version = _judge(
            settings, family, name, staging, trained, held_back, shared_dir, testset_dir
        )
        if not install_it and decision.promote:
            decision = replace(decision, action="dry_run")
        promotion = {
            "action": decision.action,
            "reason": decision.reason,
            "against": active_version,
            "decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "analyst_labels": {"train": len(analyst), "held_back": len(held_back)},
            "checks": [asdict(check) for check in checks],
        }
        card = _note_in_card(staging, trained, promotion)
        if decision.action == "unchanged":
            location = _installed(settings.model_dirs, card["model_file"])
        else:
            target = models_dir if decision.promote else models_dir / CANDIDATES_DIR
            target.mkdir(parents=True, exist_ok=True)
            location = install(model_files(staging, card), target)[-1]
        record(models_dir, decision, run_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("model %s: %s (%s)", card["version"], decision.action, decision.reason)
    return GuardOutcome(decision, checks, card, location, len(analyst), len(held_back), family)


def has_label_files(folder: Path) -> bool:
    return any(folder.glob("*.labels.jsonl"))


def _require_seed_labels(seeds_dir: Path, family: str) -> None:
    """Stop before anything is staged when ``family``'s label files are not there, naming
    the folder as the user gave it (a relative default read from another working folder)."""
    from pipeline.classify import TrainingDataError

    folder = family_labels_dir(seeds_dir, family)
    if has_label_files(folder):
        return
    where = "" if folder.is_absolute() else f" (relative to {Path.cwd()})"
    raise TrainingDataError(
        f"{folder}{where} holds no *.labels.jsonl files to train on; run escmon in the "
        "project folder or point ESCMON_SEEDS_DIR at the seeds folder"
    )


def train_family(
    settings: Settings, family: str, seeds: Path, folder: Path, shared_dir: Path | None = None
) -> ModelCard:
    """Train model ``family`` on ``seeds`` into ``folder`` as ``settings`` say (name, worker
    processes, second opinion and its embedding cache); ``shared_dir`` scores the English
    dev set."""
    from pipeline.classify import train, train_multilingual

    options: dict[str, Any] = {
        "name": family_model_name(settings, family),
        "workers": worker_count(settings.workers),
        "second_opinion": settings.second_opinion,
        "embeddings_file": settings.embeddings_file,
    }
    if family == "multi":
        return train_multilingual(seeds, folder, **options)
    return train(seeds, folder, shared_dir=shared_dir, **options)


def _judge(
    settings: Settings,
    family: str,
    name: str,
    staging: Path,
    trained: dict[str, Any],
    held_back: Sequence[AnalystRow],
    shared_dir: Path | None,
    testset_dir: Path | None,
) -> tuple[Decision, list[GuardCheck], str | None]:
    """The decision on the candidate in ``staging`` against the active model of ``name``,
    the checks it rests on, and the active model's version."""
    from pipeline.classify import ModelNotFoundError, load_model

    # Both as the daily job would run them (with or without the second opinion, its band).
    as_run: dict[str, Any] = {
        "second_opinion": settings.second_opinion,
        "band": settings.second_opinion_band,
    }
    try:
        active: Classifier | None = load_model(settings.model_dirs, name, **as_run)
    except ModelNotFoundError:
        active = None
    candidate = load_model(staging, name, **as_run)
    checks = (
        guard_checks(
            candidate,
            active,
            family_test_items(family, testset_dir, shared_dir),
            [(row[0], row[1]) for row in held_back],
        )
        if active is not None and active.version != candidate.version
        else []
    )
    active_card = (active.card or {"version": active.version}) if active else None
    decision = guard_decision(checks, trained, active_card)
    return decision, checks, active.version if active else None


def _installed(folders: Sequence[Path], model_file: str) -> Path:
    """Where ``model_file`` is installed: the last of ``folders`` (highest priority) holding it."""
    for folder in reversed(list(folders)):
        if (Path(folder) / model_file).exists():
            return Path(folder) / model_file
    return Path(folders[-1]) / model_file


def retrain_family(
    settings: Settings,
    family: str,
    *,
    run_id: str,
    install_it: bool = True,
    shared_dir: Path | None = None,
) -> dict[str, Any]:
    """One guarded retrain of ``family`` with the store's analyst labels, as the retrain
    Dag's task runs it; returns :meth:`GuardOutcome.summary` (``skipped`` when the family
    has no model name or no training files)."""
    name = family_model_name(settings, family)
    data = family_labels_dir(Path(settings.seeds_dir), family)
    if not name or not has_label_files(data):
        reason = "no model name configured" if not name else f"no {data}/*.labels.jsonl"
        log.info("%s model not trained: %s", family, reason)
        return {
            "family": family,
            "name": name or family,
            "model_file": None,
            "decision": asdict(Decision("skipped", reason)),
            "checks": [],
            "analyst_labels": {"train": 0, "held_back": 0},
        }
    analyst, held_back = analyst_rows(settings.database_url, family)
    outcome = guarded_train(
        settings,
        family=family,
        analyst=analyst,
        held_back=held_back,
        shared_dir=shared_dir if family == "en" else None,
        run_id=run_id,
        install_it=install_it,
    )
    return outcome.summary()
