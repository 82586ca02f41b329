"""The reprocess Dag: a range of days rebuilt from the store, exactly and repeatably."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline import store
from pipeline.tables import Alert, DailySignal
from tests import scenario
from tests.dags.conftest import load_dag, task_states
from tests.dags.test_escalation_monitor import serve_feed, snapshot, stage_runs
from tests.smtp_server import SmtpServer

SPIKE_DAY = dt.date(2024, 8, 10)
FIRST = SPIKE_DAY - dt.timedelta(days=30)


def reprocess(**conf) -> object:
    """Trigger the reprocess Dag with ``conf`` as its Params, under ``dag.test()``."""
    return load_dag("reprocess").test(logical_date=None, run_conf=conf)


@pytest.fixture
def spike_store(monitor_env, db_url: str, httpserver, tmp_path: Path) -> str:
    """A month of classified news ending in a spike on SPIKE_DAY, no signals computed yet."""
    serve_feed(httpserver, tmp_path / "feeds.toml", SPIKE_DAY)
    monitor_env.setenv("ESCMON_ALERT_SCOPES", "BLR")
    engine = store.make_engine(db_url)
    scenario.quiet_then(engine, final_day=SPIKE_DAY, final="spike", country="BLR")
    engine.dispose()
    return db_url


def test_reprocess_rebuilds_the_range_without_fetching_or_mail_and_again_identically(
    airflow_db, spike_store: str, smtp_server: SmtpServer, httpserver
) -> None:
    from pipeline.daily import STAGES

    run = reprocess(from_date=FIRST.isoformat(), to_date=SPIKE_DAY.isoformat())
    assert run.state == "success", task_states(run)
    assert task_states(run) == dict.fromkeys(STAGES, "success")
    assert httpserver.log == []
    engine = store.make_engine(spike_store)
    with store.session_scope(engine) as session:
        days = set(session.execute(select(DailySignal.day)).scalars())
        [alert] = session.execute(select(Alert)).scalars().all()
    assert days == {FIRST + dt.timedelta(days=n) for n in range(31)}  # every day of the range
    assert (alert.day, alert.status) == (SPIKE_DAY, "suppressed")
    assert smtp_server.received == []
    runs = stage_runs(spike_store)
    assert {r.run_id for r in runs} == {run.run_id}
    assert {r.stage: r.counts for r in runs}["ingest_feeds"] == {"fetch_skipped": 1}
    assert {r.stage: r.counts for r in runs}["split"]["articles_split"] == 0  # seed: 2024-08-20
    rows = snapshot(spike_store)

    again = reprocess(from_date=FIRST.isoformat(), to_date=SPIKE_DAY.isoformat())
    assert again.state == "success", task_states(again)
    assert snapshot(spike_store) == rows
    assert smtp_server.received == []

    # Asked for: the range's suppressed alert is mailed after all, with only that stage.
    mailed = reprocess(
        from_date=SPIKE_DAY.isoformat(),
        to_date=SPIKE_DAY.isoformat(),
        stages=["send_alerts"],
        mail_old_alerts=True,
    )
    states = task_states(mailed)
    assert states.pop("send_alerts") == "success"
    assert set(states.values()) == {"skipped"}
    [mail] = smtp_server.received
    assert mail.message["Message-ID"] == alert.message_id
    engine.dispose()


def test_reprocess_refuses_a_reversed_range(airflow_db, spike_store: str) -> None:
    dag = load_dag("reprocess")
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(
        logical_date=None,
        run_conf={"from_date": "2024-08-10", "to_date": "2024-08-01", "stages": ["split"]},
    )
    assert task_states(run)["split"] == "failed"
