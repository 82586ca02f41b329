"""The daily Dag end to end under ``dag.test()``, on SQLite and PostgreSQL stores.

The run at 00:00 of day D+1 covers day D. The latest day (the run at today's midnight)
fetches feeds and mails; an older day is rebuilt from the store: nothing fetched, its
alerts recorded as ``suppressed``.
"""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline import store
from pipeline.tables import Alert, Base, Run
from tests import scenario
from tests.dags.conftest import load_dag, run_dag, smtp_connection_to, task_states
from tests.smtp_server import SmtpServer, closed_port

DAY = dt.date(2024, 8, 20)  # the seed article's day
SPIKE_DAY = dt.date(2024, 8, 10)  # the scenario's spike, away from the seed's day


def yesterday() -> dt.date:
    """The latest day a scheduled run covers (its interval ends at today's midnight)."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def covering(day: dt.date) -> dt.date:
    """The logical date of the run that covers ``day`` (it runs when ``day`` has ended)."""
    return day + dt.timedelta(days=1)


def no_retries(dag):
    """``dag`` with retries off: ``dag.test()`` would wait out the retry delay."""
    for task in dag.tasks:
        task.retries = 0
    return dag


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table but ``runs``, without the signals' computation time."""
    engine = store.make_engine(url)
    rows: dict[str, list[tuple]] = {}
    try:
        with engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                if table.name == Run.__tablename__:
                    continue
                columns = [c for c in table.columns if c.name != "computed_at"]
                found = connection.execute(select(*columns)).all()
                rows[table.name] = sorted(tuple(map(repr, row)) for row in found)
    finally:
        engine.dispose()
    return rows


def stage_runs(url: str) -> list[Run]:
    engine = store.make_engine(url)
    try:
        with store.session_scope(engine) as session:
            found = session.execute(select(Run).order_by(Run.id)).scalars().all()
            session.expunge_all()
            return list(found)
    finally:
        engine.dispose()


FEED_STORIES = [
    (
        "Belarus moves troops to the border",
        "Belarusian troops were deployed to the border with Ukraine, the defence ministry in Minsk "
        "said. Officials in Kyiv called the move a provocation and put border units on alert.",
    ),
    (
        "Minsk and Warsaw talk about the border crossings",
        "Officials from Belarus and Poland met to discuss reopening two border crossings. Both "
        "sides described the talks as constructive and agreed to meet again next month.",
    ),
]


def rss(day: dt.date) -> bytes:
    """An RSS feed with FEED_STORIES, published at noon UTC on ``day``."""
    stamp = format_datetime(dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC), usegmt=True)
    items = "".join(
        f'<item><title>{title}</title><guid isPermaLink="false">story-{n}</guid>'
        f"<description>{text}</description><pubDate>{stamp}</pubDate></item>"
        for n, (title, text) in enumerate(FEED_STORIES)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Belarus news</title><link>http://news.example.test/</link>"
        f"<language>en</language>{items}</channel></rss>"
    ).encode()


def serve_feed(httpserver, registry: Path, day: dt.date) -> None:
    """Serve the feed on the local HTTP server and list it in the feed registry."""
    httpserver.expect_request("/belarus.xml").respond_with_data(
        rss(day), content_type="application/rss+xml"
    )
    registry.write_text(
        "[[feeds]]\n"
        'name = "belarus-news"\n'
        f'url = "{httpserver.url_for("/belarus.xml")}"\n'
        'country = "BLR"\nlanguage = "en"\ntags = ["test"]\nfulltext = "never"\n'
        "enabled = true\n",
        encoding="utf-8",
    )


def counts(url: str) -> dict[str, int]:
    engine = store.make_engine(url)
    try:
        return store.table_counts(engine)
    finally:
        engine.dispose()


def test_the_latest_day_fetches_stores_and_a_rerun_adds_nothing(
    airflow_db, monitor_env, db_url: str, smtp_server: SmtpServer, httpserver, tmp_path: Path
) -> None:
    from pipeline.daily import STAGES
    from pipeline.tables import Article, Feed

    day = yesterday()
    serve_feed(httpserver, tmp_path / "feeds.toml", day)
    dag = load_dag("escalation_monitor")
    first = run_dag(dag, covering(day))
    assert first.state == "success", task_states(first)
    assert task_states(first) == dict.fromkeys(STAGES, "success")
    after_first = counts(db_url)
    assert after_first["articles"] == 1 + len(FEED_STORIES)  # the feed's and the seed's
    assert after_first["sentences"] > 40 + len(FEED_STORIES)
    assert after_first["predictions"] == after_first["sentences"]  # all English
    assert after_first["runs"] == len(STAGES)
    runs = stage_runs(db_url)
    assert {run.run_id for run in runs} == {first.run_id}  # Airflow's run id
    assert {run.run_day for run in runs} == {day}
    engine = store.make_engine(db_url)
    with store.session_scope(engine) as session:
        feed = session.execute(select(Feed).where(Feed.name == "belarus-news")).scalar_one()
        titles = session.execute(select(Article.title).where(Article.feed_id == feed.id))
        assert sorted(titles.scalars()) == sorted(title for title, _ in FEED_STORIES)
        assert feed.last_status == 200
    engine.dispose()

    second = run_dag(dag, covering(day))
    assert second.state == "success", task_states(second)
    after_second = counts(db_url)
    assert after_second.pop("runs") == 2 * len(STAGES)
    after_first.pop("runs")
    assert after_second == after_first
    assert smtp_server.messages == []


def test_spike_day_mails_one_alert_and_a_rerun_mails_nothing(
    airflow_db, monitor_env, db_url: str, smtp_server: SmtpServer, httpserver, tmp_path: Path
) -> None:
    from pipeline.signals import compute_signals

    spike_day = yesterday()
    serve_feed(httpserver, tmp_path / "feeds.toml", spike_day)
    monitor_env.setenv("ESCMON_ALERT_SCOPES", "BLR")
    engine = store.make_engine(db_url)
    built = scenario.quiet_then(engine, final_day=spike_day, final="spike", country="BLR")
    compute_signals(engine, days=built.quiet_days)  # the history earlier daily runs computed
    dag = load_dag("escalation_monitor")

    first = run_dag(dag, covering(spike_day))
    assert first.state == "success", task_states(first)
    with store.session_scope(engine) as session:
        [alert] = session.execute(select(Alert)).scalars().all()
    assert (alert.scope, alert.day, alert.status) == ("BLR", spike_day, "sent")
    # the scenario's escalation stories, plus each feed story the model reads as escalation
    # (the troop story; the talks headline is borderline for a word model)
    assert scenario.SPIKE_STORIES <= alert.observed <= scenario.SPIKE_STORIES + len(FEED_STORIES)
    assert store.table_counts(engine)["articles"] == built.counts["articles"] + 1 + len(
        FEED_STORIES
    )  # the scenario, the seed, the feed
    [mail] = smtp_server.received
    assert mail.rcpt_tos == ["analyst@example.test"]
    assert mail.mail_from == "escmon@example.test"  # from the Airflow connection
    assert mail.message["Subject"].startswith("Escalation spike: Belarus")
    assert mail.message["Message-ID"] == alert.message_id
    before = store.table_counts(engine)

    second = run_dag(dag, covering(spike_day))
    assert second.state == "success", task_states(second)
    after = store.table_counts(engine)
    assert after.pop("runs") == before.pop("runs") + len(dag.task_ids)
    assert after == before
    assert len(smtp_server.received) == 1
    engine.dispose()


def test_a_backfill_day_is_rebuilt_without_fetching_or_mail_and_a_rerun_is_identical(
    airflow_db, monitor_env, db_url: str, smtp_server: SmtpServer, httpserver, tmp_path: Path
) -> None:
    """Clearing and rerunning an old day rebuilds exactly that day, the same rows twice."""
    from pipeline.signals import compute_signals
    from pipeline.tables import DailySignal

    serve_feed(httpserver, tmp_path / "feeds.toml", SPIKE_DAY)
    monitor_env.setenv("ESCMON_ALERT_SCOPES", "BLR")
    engine = store.make_engine(db_url)
    built = scenario.quiet_then(engine, final_day=SPIKE_DAY, final="spike", country="BLR")
    compute_signals(engine, days=built.quiet_days)
    dag = load_dag("escalation_monitor")

    first = run_dag(dag, covering(SPIKE_DAY))
    assert first.state == "success", task_states(first)
    assert httpserver.log == []  # the feeds hold today's news, not that day's: not fetched
    runs = {run.stage: run for run in stage_runs(db_url)}
    assert runs["ingest_feeds"].counts == {"fetch_skipped": 1}
    assert {run.run_day for run in runs.values()} == {SPIKE_DAY}
    with store.session_scope(engine) as session:
        [alert] = session.execute(select(Alert)).scalars().all()
        signal_days = set(session.execute(select(DailySignal.day)).scalars())
    assert (alert.day, alert.status) == (SPIKE_DAY, "suppressed")
    assert "ESCMON_ALERT_MAX_AGE_DAYS" in alert.last_error
    assert smtp_server.received == []
    assert SPIKE_DAY in signal_days
    # only that day's articles: the seed article (2024-08-20) is not split by this run
    assert store.table_counts(engine)["sentences"] == built.counts["sentences"]
    rows = snapshot(db_url)

    again = run_dag(dag, covering(SPIKE_DAY))  # dag.test() clears the day and runs it again
    assert again.state == "success", task_states(again)
    assert snapshot(db_url) == rows
    assert smtp_server.received == []
    engine.dispose()


@pytest.fixture
def unreachable_feed(tmp_path: Path) -> str:
    """A feed registry whose one feed is on a port nothing listens on; returns its name."""
    (tmp_path / "feeds.toml").write_text(
        "[[feeds]]\n"
        'name = "gone-news"\n'
        f'url = "http://127.0.0.1:{closed_port()}/feed.xml"\n'
        'country = "BLR"\nlanguage = "en"\ntags = ["test"]\nfulltext = "never"\n'
        "enabled = true\n",
        encoding="utf-8",
    )
    return "gone-news"


def test_ingest_fails_when_too_many_feeds_are_unreadable(
    airflow_db, monitor_env, db_url: str, unreachable_feed: str
) -> None:
    monitor_env.setenv("ESCMON_INGEST_MAX_FAILED_SHARE", "0.5")
    run = run_dag(no_retries(load_dag("escalation_monitor")), covering(yesterday()))
    states = task_states(run)
    assert (states["ingest_seeds"], states["ingest_feeds"]) == ("success", "failed")
    assert states["split"] == "upstream_failed"
    ingest = {r.stage: r for r in stage_runs(db_url)}["ingest_feeds"]
    assert ingest.status == "failed"
    assert ingest.counts["feeds_failed"] == 1  # what it did is recorded all the same
    assert f"{unreachable_feed}: " in ingest.error
    assert "ESCMON_INGEST_MAX_FAILED_SHARE=0.5" in ingest.error


def test_send_alerts_fails_when_the_mail_server_is_down(
    airflow_db, monitor_env, db_url: str
) -> None:
    from pipeline.signals import compute_signals

    spike_day = yesterday()
    monitor_env.setenv("ESCMON_ALERT_SCOPES", "BLR")
    monitor_env.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_to("127.0.0.1", closed_port()))
    engine = store.make_engine(db_url)
    built = scenario.quiet_then(engine, final_day=spike_day, final="spike", country="BLR")
    compute_signals(engine, days=built.quiet_days)
    dag = no_retries(load_dag("escalation_monitor"))
    for task in dag.tasks:
        task.on_failure_callback = []  # the failure notice would go to the same dead server
    run = run_dag(dag, covering(spike_day))
    assert task_states(run)["send_alerts"] == "failed"
    with store.session_scope(engine) as session:
        [alert] = session.execute(select(Alert)).scalars().all()
    assert alert.status == "pending"  # sent by a later run (or retry)
    send = {r.stage: r for r in stage_runs(db_url)}["send_alerts"]
    assert send.status == "failed"
    assert send.counts["failed"] == 1
    assert "1 alert(s) could not be sent" in send.error
    assert f"#{alert.id}: SMTP 127.0.0.1:" in send.error
    engine.dispose()


def test_failed_stage_fails_the_run_and_mails_the_failure(
    airflow_db, monitor_env, db_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    monitor_env.setenv("ESCMON_SEEDS_DIR", str(tmp_path / "missing"))
    dag = no_retries(load_dag("escalation_monitor"))
    run = run_dag(dag, DAY)
    assert run.state == "failed"
    states = task_states(run)
    assert states.pop("ingest_seeds") == "failed"
    assert set(states.values()) <= {"upstream_failed"}
    [mail] = smtp_server.received
    assert mail.rcpt_tos == ["ops@example.test"]
    assert "ingest_seeds" in mail.message["Subject"]


def test_alert_mail_settings_come_from_the_airflow_connection(
    airflow_db, monitor_env, smtp_server: SmtpServer
) -> None:
    from escmon_airflow.stages import smtp_overrides

    overrides = smtp_overrides("smtp_default")
    assert overrides["smtp_host"] == smtp_server.host
    assert overrides["smtp_port"] == smtp_server.port
    assert overrides["alert_from"] == "escmon@example.test"
    assert smtp_overrides("no_such_connection") is None
