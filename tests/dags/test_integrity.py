"""Every Dag file parses under Airflow's own DagBag, with owner, tags and retries set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dags.conftest import DAG_FILES, load_dag


def test_there_are_dag_files() -> None:
    assert {path.name for path in DAG_FILES} >= {"escalation_monitor.py"}


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


def test_monitor_tasks_are_the_daily_stages_in_order() -> None:
    from pipeline.daily import STAGES

    dag = load_dag("escalation_monitor")
    assert dag.task_ids == list(STAGES)
    for upstream, downstream in zip(dag.task_ids, dag.task_ids[1:], strict=False):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert dag.get_task(dag.task_ids[0]).upstream_task_ids == set()


def test_monitor_schedule_and_catchup() -> None:
    dag = load_dag("escalation_monitor")
    assert dag.catchup is True
    assert dag.timetable.expression == "0 0 * * *"
    assert dag.doc_md.strip().startswith("# Escalation monitor")


def test_failure_mail_is_a_task_level_smtp_notifier() -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    dag = load_dag("escalation_monitor")
    assert not dag.on_failure_callback, "a Dag-level SmtpNotifier fails under dag.test()"
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert any(isinstance(cb, SmtpNotifier) for cb in callbacks)
