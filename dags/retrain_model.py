"""
# Retrain the sentence classifier

Trains a candidate model on `seeds/*.labels.jsonl` (`ESCMON_SEEDS_DIR`) into a
staging folder under `ESCMON_MODELS_DIR`, compares its model card with the
current model's, and promotes it (copies it into the models folder, where the
`classify` stage picks the newest model) **only if it is not worse**.

* **Metric**: macro-F1 on the development set when both cards scored the same
  one (same references file), otherwise the cross-validated macro-F1.
* **Decision**: logged in the task log and appended to
  `<models>/promotions.jsonl` (promoted, rejected or unchanged, with both scores).
* **Schedule**: manual by default; set `ESCMON_RETRAIN_SCHEDULE` (e.g.
  `@weekly`) to run it on a schedule. Optional `ESCMON_SHARED_DIR` points at the
  shared corpora so the candidate is also scored on the development set.

Trigger it from the UI or with `airflow dags trigger retrain_model`.
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

import pendulum
from airflow.sdk import dag, task
from escmon_airflow import env, failure_notifier, quiet_skops_scan, schedule_from_env

DAG_ID = "retrain_model"
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
    same_dev = (
        dev_a.get("status") == dev_b.get("status") == "scored"
        and dev_a.get("refs_sha256") == dev_b.get("refs_sha256")
    )
    return "dev_set" if same_dev else "cross_validation"


def decide(candidate: dict[str, Any], current: dict[str, Any] | None) -> Decision:
    """Promote the candidate card unless the current model scores better on the same metric."""
    versions = {"candidate_version": candidate.get("version")}
    if current is None:
        return Decision("promote", "no current model", **versions)
    versions["current_version"] = current.get("version")
    if candidate.get("version") == current.get("version"):
        return Decision("unchanged", "same data and parameters as the current model", **versions)
    metric = comparable_metric(candidate, current)
    new = float(candidate[metric]["macro_f1"])
    old = float(current[metric]["macro_f1"])
    scores = {"metric": f"{metric}.macro_f1", "candidate_score": new, "current_score": old}
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
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "run_id": run_id,
             **asdict(decision)}
    with (models_dir / DECISIONS_FILE).open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def current_card(models_dir: Path, name: str) -> dict[str, Any] | None:
    """The card of the model the classify stage would load now (None if there is none)."""
    from pipeline.classify import ModelNotFoundError, load_model

    try:
        return load_model(models_dir, name).card or None
    except ModelNotFoundError:
        return None


# --- tasks -------------------------------------------------------------------------------


def train_candidate() -> dict[str, str]:
    """Train on the seeds into a fresh staging folder; returns the folder and card file."""
    from pipeline.classify import train
    from pipeline.config import get_settings

    settings = get_settings()
    staging_root = Path(settings.models_dir) / STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="candidate-", dir=staging_root))
    shared = os.environ.get("ESCMON_SHARED_DIR")
    try:
        card = train(Path(settings.seeds_dir), staging, name=settings.model_name,
                     shared_dir=Path(shared) if shared else None)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("trained candidate %s in %s", card.version, staging)
    return {"staging": str(staging), "card": str(model_files(staging, asdict(card))[0])}


def promote_if_not_worse(candidate: dict[str, str], run_id: str) -> dict[str, Any]:
    """Compare the candidate with the current model, install it if not worse, log why."""
    from pipeline.config import get_settings

    settings = get_settings()
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


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "escmon",
    "retries": int(env("ESCMON_RETRIES", "1")),
    "retry_delay": dt.timedelta(minutes=10),
    "on_failure_callback": failure_notifier(),
}


@dag(
    dag_id=DAG_ID,
    schedule=schedule_from_env("ESCMON_RETRAIN_SCHEDULE", "none"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["escmon", "model"],
    doc_md=__doc__,
)
def retrain_model() -> None:
    @task(task_id="train_candidate")
    def train_task() -> dict[str, str]:
        with quiet_skops_scan():
            return train_candidate()

    @task(task_id="promote_if_not_worse")
    def promote_task(candidate: dict[str, str], run_id: str | None = None) -> dict[str, Any]:
        with quiet_skops_scan():
            return promote_if_not_worse(candidate, run_id or "")

    promote_task(train_task())


retrain_model()
