"""The retraining Dag: guarded retrains of both model families into the data folder, the
comparison mailed to the alert recipients, the active-model asset only on promotion."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import pytest

from tests.dags.conftest import REPO, load_dag, run_dag, smtp_connection, task_states
from tests.smtp_server import SmtpServer

DAY = dt.date(2024, 8, 20)
LANGUAGE_ROWS_PER_LABEL = 12  # per language: the multilingual model trains in seconds


def test_retrain_is_manual_with_a_promote_param() -> None:
    dag = load_dag("retrain_model")
    assert dag.schedule is None
    assert dag.params["promote"] is True
    assert {task.task_id for task in dag.tasks} == {
        "retrain_en",
        "retrain_multi",
        "mail_comparison",
        "update_active_model",
    }


@pytest.fixture(scope="module")
def both_seeds(small_seeds: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_seeds`` plus a few labelled sentences per class of each region language."""
    folder = tmp_path_factory.mktemp("both-seeds")
    (folder / "small.labels.jsonl").symlink_to(small_seeds / "small.labels.jsonl")
    languages = folder / "languages"
    languages.mkdir()
    for path in sorted((REPO / "seeds" / "languages").glob("news_??.labels.jsonl")):
        by_label: dict[str, list[str]] = defaultdict(list)
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                by_label[json.loads(line)["label"]].append(line)
        lines = [line for rows in by_label.values() for line in rows[:LANGUAGE_ROWS_PER_LABEL]]
        (languages / path.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _retrain_env(env, tmp_path: Path, seeds: Path, smtp_server: SmtpServer) -> dict[str, Path]:
    """ESCMON_* settings: a shipped models folder, a data folder, a store, the mail server."""
    from pipeline import store

    folders = {"shipped": tmp_path / "shipped", "data": tmp_path / "data"}
    folders["shipped"].mkdir()
    url = f"sqlite:///{tmp_path / 'escmon.db'}"
    store.upgrade(url)
    env.setenv("ESCMON_DATABASE_URL", url)
    env.setenv("ESCMON_SEEDS_DIR", str(seeds))
    env.setenv("ESCMON_MODELS_DIR", str(folders["shipped"]))
    env.setenv("ESCMON_DATA_DIR", str(folders["data"]))
    env.setenv("ESCMON_SECOND_OPINION", "false")  # the fast models: the DAG is under test
    env.setenv("ESCMON_ALERT_TO", "analyst@example.test")
    env.setenv("ESCMON_FAILURE_EMAIL", "ops@example.test")
    env.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(smtp_server))
    env.delenv("ESCMON_SHARED_DIR", raising=False)
    return folders


def decisions(data: Path) -> list[dict]:
    lines = (data / "models" / "promotions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def active_model_events() -> list[dict]:
    """The extras of the ``escmon_active_model`` asset's events, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "escmon_active_model")
            .order_by(AssetEvent.id)
        )
        return [dict(extra or {}) for extra in session.scalars(query)]


def _bodies(message) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def test_retrain_promotes_both_models_into_the_data_folder_and_mails_the_comparison(
    airflow_db, pipeline_env, both_seeds: Path, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    from pipeline.classify import load_model
    from pipeline.config import Settings

    folders = _retrain_env(pipeline_env, tmp_path, both_seeds, smtp_server)
    dag = load_dag("retrain_model")
    events = len(active_model_events())
    first = run_dag(dag, DAY)
    assert first.state == "success", task_states(first)
    assert task_states(first)["update_active_model"] == "success"
    [event] = active_model_events()[events:]  # the promotion's asset event
    assert event["escalation"]["action"] == event["escalation-multi"]["action"] == "promote"
    assert [d["action"] for d in decisions(folders["data"])] == ["promote", "promote"]
    settings = Settings()
    english = load_model(settings.model_dirs, "escalation")
    multi = load_model(settings.model_dirs, "escalation-multi")
    assert sorted(p.name for p in (folders["data"] / "models").glob("*.skops")) == sorted(
        [f"escalation-{english.version}.skops", f"escalation-multi-{multi.version}.skops"]
    )
    assert list(folders["shipped"].iterdir()) == []  # the shipped folder is never written
    assert list((folders["data"] / "models" / ".staging").iterdir()) == []

    summary = first.get_task_instance("retrain_en").xcom_pull(task_ids="retrain_en")
    assert summary["decision"]["candidate_version"] == english.version
    assert str(tmp_path) not in json.dumps(summary)  # no local path through XCom

    [mail] = smtp_server.received
    assert mail.rcpt_tos == ["analyst@example.test"]
    subject = mail.message["Subject"]
    assert "escalation promoted, active now" in subject
    assert "escalation-multi promoted, active now" in subject
    text, html = _bodies(mail.message)
    assert f"candidate {english.version}, active (none)" in text
    assert "reason: no active model" in text
    assert f"<code>{multi.version}</code>" in html

    second = run_dag(dag, DAY)
    assert second.state == "success", task_states(second)
    assert [d["action"] for d in decisions(folders["data"])][2:] == ["unchanged", "unchanged"]
    assert task_states(second)["update_active_model"] == "skipped"
    assert len(active_model_events()) == events + 1  # no new asset event without a promotion
    assert len(smtp_server.received) == 2
    assert "unchanged" in smtp_server.received[1].message["Subject"]


def test_retrain_with_promote_false_keeps_candidates_only(
    airflow_db, pipeline_env, small_seeds: Path, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    folders = _retrain_env(pipeline_env, tmp_path, small_seeds, smtp_server)
    logical_date = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    run = load_dag("retrain_model").test(logical_date=logical_date, run_conf={"promote": False})
    assert run.state == "success", task_states(run)
    assert task_states(run)["retrain_multi"] == "success"  # no languages/: not trained
    assert [d["action"] for d in decisions(folders["data"])] == ["dry_run"]
    assert not list((folders["data"] / "models").glob("*.skops"))
    assert len(list((folders["data"] / "models" / "candidates").glob("*.skops"))) == 1
    assert task_states(run)["update_active_model"] == "skipped"
    [mail] = smtp_server.messages
    text, _ = _bodies(mail)
    assert "not installed (dry run)" in text and "escalation-multi: not trained" in text


@pytest.mark.slow
def test_retrain_rejects_a_model_worse_on_the_test_set_and_mails_why(
    airflow_db, pipeline_env, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """As in tests/test_promote.py: an active model of 600 real-news sentences, and 50
    analyst labels that call talks and truces escalation. The candidate is worse on the
    frozen test set, so it stays a candidate, the asset gets no event and the mail says why."""
    from pipeline import store
    from pipeline.classify import load_model, train
    from pipeline.config import Settings
    from pipeline.labelling import import_labels, is_held_back
    from tests.test_promote import POOL_FILES, SMALL_SEEDS, _rows

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    small = [row for name in SMALL_SEEDS for row in _rows(name)[:150]]
    (seeds / "small.labels.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in small), encoding="utf-8"
    )
    folders = _retrain_env(pipeline_env, tmp_path, seeds, smtp_server)
    active = train(seeds, folders["shipped"], second_opinion=False)
    calm = [row for name in POOL_FILES for row in _rows(name) if row["label"] == "deescalation"]
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(
        "".join(json.dumps({"text": r["text"], "label": "escalation"}) + "\n" for r in calm[:50]),
        encoding="utf-8",
    )
    engine = store.make_engine(Settings().database_url)
    assert import_labels(engine, wrong, "ana")["imported"] == 50
    engine.dispose()

    run = run_dag(load_dag("retrain_model"), DAY)
    assert run.state == "success", task_states(run)
    assert task_states(run)["update_active_model"] == "skipped"
    [rejected] = decisions(folders["data"])
    assert rejected["action"] == "reject" and "worse on frozen test set" in rejected["reason"]
    assert load_model(Settings().model_dirs).version == active.version  # still active
    assert len(list((folders["data"] / "models" / "candidates").glob("*.skops"))) == 1
    [mail] = smtp_server.messages
    assert "escalation not promoted, kept as a candidate" in mail["Subject"]
    text, html = _bodies(mail)
    assert f"active {active.version}" in text
    assert "frozen test set (" in text and "held-back analyst labels (" in text
    held = sum(is_held_back(row["text"]) for row in calm[:50])
    assert f"analyst labels: {50 - held} trained on, {held} held back" in text
    assert "<table" in html and "worse on frozen test set" in html
