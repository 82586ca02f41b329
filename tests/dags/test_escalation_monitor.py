"""The daily Dag end to end under ``dag.test()``, on SQLite and PostgreSQL stores."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline import store
from pipeline.tables import Alert
from tests import scenario
from tests.dags.airflow_env import REPO
from tests.dags.conftest import load_dag, run_dag, task_states
from tests.smtp_server import SmtpServer, running_smtp_server

DAY = dt.date(2024, 8, 20)  # the seed article's day
SPIKE_DAY = dt.date(2024, 8, 10)  # the scenario's spike, away from the seed's day


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


def smtp_connection(server: SmtpServer) -> str:
    """An Airflow SMTP connection (``AIRFLOW_CONN_*`` JSON) for the test server."""
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": server.host,
            "port": server.port,
            "extra": {
                "disable_ssl": True,
                "disable_tls": True,
                "timeout": 5,
                "from_email": "escmon@example.test",
            },
        }
    )


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


@pytest.fixture
def monitor_env(pipeline_env, db_url: str, smtp_server: SmtpServer, tmp_path: Path):
    """ESCMON_* settings for a run against ``db_url`` and the test SMTP server."""
    env = pipeline_env
    env.setenv("ESCMON_DATABASE_URL", db_url)
    env.setenv("ESCMON_SEEDS_DIR", str(REPO / "seeds"))
    env.setenv("ESCMON_MODELS_DIR", str(REPO / "models"))  # the shipped model
    registry = tmp_path / "feeds.toml"
    if not registry.exists():
        registry.write_text("", encoding="utf-8")  # an empty registry: no feeds (a test may add)
    env.setenv("ESCMON_FEEDS_FILE", str(registry))
    env.setenv("ESCMON_OFFLINE", "false")
    env.setenv("ESCMON_ALERT_TO", "analyst@example.test")
    env.setenv("ESCMON_FAILURE_EMAIL", "ops@example.test")
    env.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(smtp_server))
    return env


def counts(url: str) -> dict[str, int]:
    engine = store.make_engine(url)
    try:
        return store.table_counts(engine)
    finally:
        engine.dispose()


def test_run_day_is_the_logical_date_in_utc() -> None:
    from dags.escalation_monitor import run_day

    berlin = dt.timezone(dt.timedelta(hours=2))
    assert run_day(dt.datetime(2024, 8, 20, 1, 30, tzinfo=berlin), None) == dt.date(2024, 8, 19)
    assert run_day(None, dt.datetime(2024, 8, 21, 9, tzinfo=dt.UTC)) == dt.date(2024, 8, 21)
    with pytest.raises(ValueError, match="neither"):
        run_day(None, None)


def test_schedule_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from escmon_airflow import schedule_from_env

    monkeypatch.setenv("ESCMON_SCHEDULE", "30 5 * * *")
    assert schedule_from_env("ESCMON_SCHEDULE", "@daily").expression == "30 5 * * *"
    monkeypatch.setenv("ESCMON_SCHEDULE", "none")
    assert schedule_from_env("ESCMON_SCHEDULE", "@daily") is None
    monkeypatch.delenv("ESCMON_SCHEDULE")
    assert schedule_from_env("ESCMON_SCHEDULE", "@daily").expression == "0 0 * * *"


def test_daily_run_stores_the_day_and_a_rerun_adds_nothing(
    airflow_db, monitor_env, db_url: str, smtp_server: SmtpServer, httpserver, tmp_path: Path
) -> None:
    from pipeline.daily import STAGES
    from pipeline.tables import Article, Feed

    serve_feed(httpserver, tmp_path / "feeds.toml", DAY)
    dag = load_dag("escalation_monitor")
    first = run_dag(dag, DAY)
    assert first.state == "success", task_states(first)
    assert task_states(first) == dict.fromkeys(STAGES, "success")
    after_first = counts(db_url)
    assert after_first["articles"] == 1 + len(FEED_STORIES)
    assert after_first["sentences"] > 40 + len(FEED_STORIES)
    assert after_first["predictions"] == after_first["sentences"]  # all English
    assert after_first["runs"] == len(STAGES)
    engine = store.make_engine(db_url)
    with store.session_scope(engine) as session:
        feed = session.execute(select(Feed).where(Feed.name == "belarus-news")).scalar_one()
        titles = session.execute(select(Article.title).where(Article.feed_id == feed.id))
        assert sorted(titles.scalars()) == sorted(title for title, _ in FEED_STORIES)
        assert feed.last_status == 200
    engine.dispose()

    second = run_dag(dag, DAY)
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

    serve_feed(httpserver, tmp_path / "feeds.toml", SPIKE_DAY)
    monitor_env.setenv("ESCMON_ALERT_SCOPES", "BLR")
    engine = store.make_engine(db_url)
    built = scenario.quiet_then(engine, final_day=SPIKE_DAY, final="spike", country="BLR")
    compute_signals(engine, days=built.quiet_days)  # the history earlier daily runs computed
    dag = load_dag("escalation_monitor")

    first = run_dag(dag, SPIKE_DAY)
    assert first.state == "success", task_states(first)
    with store.session_scope(engine) as session:
        [alert] = session.execute(select(Alert)).scalars().all()
    assert (alert.scope, alert.day, alert.status) == ("BLR", SPIKE_DAY, "sent")
    # the scenario's escalation stories, plus the feed's troop story if the model agrees
    assert alert.observed in {scenario.SPIKE_STORIES, scenario.SPIKE_STORIES + 1}
    assert store.table_counts(engine)["articles"] == built.counts["articles"] + 1 + len(
        FEED_STORIES
    )  # the scenario, the seed, the feed
    [mail] = smtp_server.received
    assert mail.rcpt_tos == ["analyst@example.test"]
    assert mail.mail_from == "escmon@example.test"  # from the Airflow connection
    assert mail.message["Subject"].startswith("Escalation spike: Belarus")
    assert mail.message["Message-ID"] == alert.message_id
    before = store.table_counts(engine)

    second = run_dag(dag, SPIKE_DAY)
    assert second.state == "success", task_states(second)
    after = store.table_counts(engine)
    assert after.pop("runs") == before.pop("runs") + len(dag.task_ids)
    assert after == before
    assert len(smtp_server.received) == 1
    engine.dispose()


def test_failed_stage_fails_the_run_and_mails_the_failure(
    airflow_db, monitor_env, db_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    monitor_env.setenv("ESCMON_SEEDS_DIR", str(tmp_path / "missing"))
    monitor_env.setenv("ESCMON_RETRIES", "0")  # dag.test() would wait out the retry delay
    dag = load_dag("escalation_monitor")
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
    from dags.escalation_monitor import smtp_overrides

    overrides = smtp_overrides("smtp_default")
    assert overrides["smtp_host"] == smtp_server.host
    assert overrides["smtp_port"] == smtp_server.port
    assert overrides["alert_from"] == "escmon@example.test"
    assert smtp_overrides("no_such_connection") is None
