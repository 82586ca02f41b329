"""The retraining Dag: train into staging, promote only if not worse, log the decision."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.dags.conftest import load_dag, run_dag, task_states

DAY = dt.date(2024, 8, 20)


def test_retrain_is_manual_with_a_promote_param() -> None:
    dag = load_dag("retrain_model")
    assert dag.schedule is None
    assert dag.params["promote"] is True


@pytest.fixture
def retrain_env(pipeline_env, small_seeds: Path, tmp_path: Path) -> Path:
    """ESCMON_* settings for retraining into an empty models folder; returns that folder."""
    models = tmp_path / "models"
    pipeline_env.setenv("ESCMON_SEEDS_DIR", str(small_seeds))
    pipeline_env.setenv("ESCMON_MODELS_DIR", str(models))
    pipeline_env.delenv("ESCMON_SHARED_DIR", raising=False)
    return models


def decisions(models: Path) -> list[dict]:
    lines = (models / "promotions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_retrain_promotes_then_keeps_an_identical_candidate(airflow_db, retrain_env: Path) -> None:
    from pipeline.classify import load_model

    dag = load_dag("retrain_model")
    assert dag.schedule is None  # manual unless ESCMON_RETRAIN_SCHEDULE is set
    first = run_dag(dag, DAY)
    assert first.state == "success", task_states(first)
    [promoted] = decisions(retrain_env)
    assert promoted["action"] == "promote"
    model = load_model(retrain_env)
    assert model.version == promoted["candidate_version"]
    assert sorted(p.name for p in retrain_env.glob("escalation-*")) == sorted(
        f"escalation-{model.version}{suffix}" for suffix in (".card.json", ".card.md", ".skops")
    )

    trained = first.get_task_instance("train_candidate")
    assert trained.xcom_pull(task_ids="train_candidate") == {
        "version": model.version
    }  # no local path through XCom: the promote task finds the staging folder by run id
    assert list((retrain_env / ".staging").iterdir()) == []

    second = run_dag(dag, DAY)
    assert second.state == "success", task_states(second)
    assert [d["action"] for d in decisions(retrain_env)] == ["promote", "unchanged"]
    assert list((retrain_env / ".staging").iterdir()) == []
    assert not list(retrain_env.glob(".*.partial"))


def test_retrain_with_promote_false_installs_nothing(airflow_db, retrain_env: Path) -> None:
    dag = load_dag("retrain_model")
    logical_date = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    run = dag.test(logical_date=logical_date, run_conf={"promote": False})
    assert run.state == "success", task_states(run)
    [decision] = decisions(retrain_env)
    assert decision["action"] == "dry_run"
    assert not list(retrain_env.glob("*.skops"))


def test_retrain_rejects_a_worse_candidate(airflow_db, retrain_env: Path, small_seeds) -> None:
    from pipeline.classify import load_model, train

    current = train(small_seeds, retrain_env)
    card_path = retrain_env / f"escalation-{current.version}.card.json"
    claimed = json.loads(card_path.read_text(encoding="utf-8"))
    claimed["version"] = "1.0-0000000000"  # a different, better model (by its card)
    claimed["cross_validation"]["macro_f1"] = 1.0
    card_path.write_text(json.dumps(claimed), encoding="utf-8")

    run = run_dag(load_dag("retrain_model"), DAY)
    assert run.state == "success", task_states(run)
    [rejected] = decisions(retrain_env)
    assert rejected["action"] == "reject"
    assert rejected["current_score"] == 1.0
    assert rejected["candidate_score"] < 1.0
    assert load_model(retrain_env).card["version"] == "1.0-0000000000"
    assert len(list(retrain_env.glob("*.skops"))) == 1
