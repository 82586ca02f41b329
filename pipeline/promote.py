"""Retraining: train a candidate model, promote it only if it is not worse.

Used by ``dags/retrain_model.py``. The candidate is trained into a staging
folder under the models folder; its card is compared with the current model's
on the dev set when both scored the same one, else on cross-validation; the
decision is appended to ``<models>/promotions.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Settings

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


def train_candidate(settings: Settings, shared_dir: Path | None = None) -> dict[str, str]:
    """Train on the seeds into a fresh staging folder; returns the folder and card file."""
    from pipeline.classify import train

    staging_root = Path(settings.models_dir) / STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="candidate-", dir=staging_root))
    try:
        card = train(
            Path(settings.seeds_dir), staging, name=settings.model_name, shared_dir=shared_dir
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("trained candidate %s in %s", card.version, staging)
    return {"staging": str(staging), "card": str(model_files(staging, asdict(card))[0])}


def promote_if_not_worse(
    settings: Settings, candidate: dict[str, str], run_id: str
) -> dict[str, Any]:
    """Compare the candidate with the current model, install it if not worse, log why."""
    models_dir = Path(settings.models_dir)
    staging = Path(candidate["staging"])
    card = json.loads(Path(candidate["card"]).read_text(encoding="utf-8"))
    decision = decide(card, current_card(models_dir, settings.model_name))
    if decision.promote:
        install(model_files(staging, card), models_dir)
    record(models_dir, decision, run_id)
    log.info("model %s: %s (%s)", card["version"], decision.action, decision.reason)
    # Only now: a retry of this task after a failure above still finds the candidate.
    shutil.rmtree(staging, ignore_errors=True)
    return asdict(decision)
