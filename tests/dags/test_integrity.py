"""Every Dag file parses under Airflow's own DagBag, with owner, tags and retries set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dags.conftest import DAG_FILES, load_dag


def test_there_are_dag_files() -> None:
    assert {path.name for path in DAG_FILES} >= {
        "escalation_monitor.py",
        "reprocess.py",
        "retrain_model.py",
    }


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda path: path.name)
def test_dag_file_imports_cleanly_with_tags_and_retries(path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path)
    assert bag.import_errors == {}
    assert bag.dags, f"{path.name} defines no Dag"
    for dag in bag.dags.values():
        assert dag.fileloc == str(path)
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert dag.doc_md, f"{dag.dag_id} has no doc_md"
        assert dag.max_active_runs == 1
        for task in dag.tasks:
            assert task.owner == "escmon", task.task_id
            assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} has no retries"
            assert task.retry_delay.total_seconds() > 0
            assert task.on_failure_callback, f"{dag.dag_id}.{task.task_id} notifies nobody"


@pytest.mark.parametrize("dag_id", ["escalation_monitor", "reprocess"])
def test_monitor_tasks_are_the_daily_stages_in_order(dag_id: str) -> None:
    from pipeline.daily import STAGES

    dag = load_dag(dag_id)
    assert dag.task_ids == list(STAGES)
    for upstream, downstream in zip(dag.task_ids, dag.task_ids[1:], strict=False):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert dag.get_task(dag.task_ids[0]).upstream_task_ids == set()


def test_monitor_schedule_is_the_default_timetable_without_catchup() -> None:
    """Runs at 00:00 UTC for the day just ended; the first unpause queues no backlog."""
    import datetime as dt

    from airflow.sdk import CronTriggerTimetable

    dag = load_dag("escalation_monitor")
    assert dag.catchup is False  # Airflow's [scheduler] catchup_by_default
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.expression == "0 0 * * *"
    assert dag.timetable.interval == dt.timedelta(days=1)
    assert dag.doc_md.strip().startswith("# Escalation monitor")
    assert load_dag("retrain_model").schedule is None  # manual
    assert load_dag("reprocess").schedule is None


def test_the_active_model_asset_links_retraining_to_classify() -> None:
    from escmon_airflow import ACTIVE_MODEL

    promote = load_dag("retrain_model").get_task("update_active_model")
    assert ACTIVE_MODEL in promote.outlets
    for dag_id in ("escalation_monitor", "reprocess"):
        dag = load_dag(dag_id)
        readers = [task.task_id for task in dag.tasks if ACTIVE_MODEL in task.inlets]
        assert readers == ["classify"], dag_id


def test_failure_mail_is_a_task_level_smtp_notifier() -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    dag = load_dag("escalation_monitor")
    assert not dag.on_failure_callback, "a Dag-level SmtpNotifier fails under dag.test()"
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert any(isinstance(cb, SmtpNotifier) for cb in callbacks)
