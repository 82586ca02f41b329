from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pipeline import daily, store
from pipeline.tables import Article, Run, Sentence

DAY = dt.date(2024, 8, 10)


def test_daily_run_stores_seed_sentences_with_offsets(settings) -> None:
    ctx = daily.make_context(DAY, settings)
    results = daily.run_daily(ctx)
    assert [r.stage for r in results] == list(daily.STAGES)
    assert all(r.status == "ok" for r in results)
    with store.session_scope(ctx.engine) as session:
        article = session.execute(select(Article)).scalar_one()
        sentences = session.execute(select(Sentence).order_by(Sentence.idx)).scalars().all()
    assert len(sentences) > 40
    for sentence in sentences:
        assert article.text[sentence.start : sentence.end] == sentence.text
    assert sentences[0].text.startswith("On July 13, Belarusian president")
    ctx.engine.dispose()


def test_rerun_adds_rows_only_to_runs(settings) -> None:
    ctx = daily.make_context(DAY, settings)
    daily.run_daily(ctx)
    before = store.table_counts(ctx.engine)
    second = daily.run_daily(ctx)
    after = store.table_counts(ctx.engine)
    assert after["runs"] == before["runs"] + len(daily.STAGES)
    assert {k: v for k, v in after.items() if k != "runs"} == {
        k: v for k, v in before.items() if k != "runs"
    }
    assert all(not any(r.counts.get(k) for k in ("articles_new", "sentences_new")) for r in second)
    ctx.engine.dispose()


def test_failing_stage_is_recorded_and_named(settings, tmp_path) -> None:
    settings.seeds_dir = tmp_path / "missing"
    ctx = daily.make_context(DAY, settings)
    with pytest.raises(daily.StageError, match=r"stage 'ingest_seeds' failed: .*seeds folder"):
        daily.run_daily(ctx)
    with store.session_scope(ctx.engine) as session:
        run = session.execute(select(Run)).scalar_one()
    assert run.status == "failed"
    assert "seeds folder not found" in run.error
    ctx.engine.dispose()


def test_unknown_stage() -> None:
    with pytest.raises(KeyError, match="unknown stage"):
        daily.run_stage(None, "nope")  # type: ignore[arg-type]


def test_the_library_never_imports_airflow() -> None:
    """Airflow is an optional extra: the daily job and the CLI run without it."""
    import subprocess
    import sys

    probe = (
        "import sys, pipeline.daily, pipeline.cli, pipeline.alerts, pipeline.feeds; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- intervals, rebuilds, honest states ----------------------------------------------

SEED_DAY = dt.date(2024, 8, 20)  # the seed article's publication day


def _rows(engine) -> dict[str, list[tuple]]:
    """Every row but the runs and the signals' computation time (what a rebuild must keep)."""
    from pipeline.tables import Base

    found: dict[str, list[tuple]] = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name != Run.__tablename__:
                columns = [c for c in table.columns if c.name != "computed_at"]
                found[table.name] = sorted(
                    tuple(map(repr, row)) for row in connection.execute(select(*columns))
                )
    return found


def _unreachable_registry(path, name: str = "gone-news") -> None:
    from tests.smtp_server import closed_port

    path.write_text(
        f'[[feeds]]\nname = "{name}"\nurl = "http://127.0.0.1:{closed_port()}/feed.xml"\n'
        'country = "BLR"\nlanguage = "en"\ntags = []\nfulltext = "never"\nenabled = true\n',
        encoding="utf-8",
    )


def test_a_rebuild_works_on_its_days_only_and_again_gives_the_same_rows(settings) -> None:
    from pipeline.tables import DailySignal

    _unreachable_registry(settings.feeds_file)
    settings.offline = False  # a rebuild must not even try the (unreachable) feed
    before = daily.make_context(SEED_DAY, settings, first_day=SEED_DAY, rebuild=True)
    daily.run_stage(before, "ingest_seeds")
    other = daily.make_context(DAY, settings, first_day=DAY - dt.timedelta(days=1), rebuild=True)
    results = {r.stage: r.counts for r in daily.run_daily(other)}
    assert results["ingest_feeds"] == {"fetch_skipped": 1}
    assert results["split"]["articles_split"] == 0  # the seed article is not of those days
    with store.session_scope(other.engine) as session:
        assert session.execute(select(Sentence.id)).first() is None

    ctx = daily.make_context(SEED_DAY, settings, first_day=SEED_DAY, rebuild=True)
    results = {r.stage: r.counts for r in daily.run_daily(ctx)}
    assert results["split"]["articles_split"] == 1
    assert results["classify"]["sentences_scored"] > 40
    assert results["signals"]["days"] == 1  # exactly the day: no look-back in a rebuild
    with store.session_scope(ctx.engine) as session:
        days = set(session.execute(select(DailySignal.day)).scalars())
        assert days == {DAY - dt.timedelta(days=1), DAY, SEED_DAY}  # each rebuild's own days
        feed = session.execute(select(Run).where(Run.stage == "ingest_feeds")).scalars().first()
        assert feed is not None and feed.run_id == other.run_id
    rows = _rows(ctx.engine)
    again = daily.make_context(SEED_DAY, settings, first_day=SEED_DAY, rebuild=True, run_id="x")
    results = {r.stage: r.counts for r in daily.run_daily(again)}
    assert results["signals"]["days"] == 1  # recomputed ...
    assert _rows(ctx.engine) == rows  # ... to the same rows
    with store.session_scope(ctx.engine) as session:
        assert len(session.execute(select(Run).where(Run.run_id == "x")).all()) == len(daily.STAGES)
    for context in (before, other, ctx, again):
        context.engine.dispose()


def test_context_days_and_a_reversed_range(settings) -> None:
    ctx = daily.make_context(DAY, settings, first_day=DAY - dt.timedelta(days=2))
    assert ctx.days == [DAY - dt.timedelta(days=2), DAY - dt.timedelta(days=1), DAY]
    assert daily.make_context(DAY, settings).days == [DAY]
    ctx.engine.dispose()
    with pytest.raises(ValueError, match="after the last day"):
        daily.make_context(DAY, settings, first_day=DAY + dt.timedelta(days=1))


def test_unreadable_feeds_are_named_in_a_warning_and_fail_past_the_threshold(
    settings, caplog
) -> None:
    import logging

    _unreachable_registry(settings.feeds_file)
    settings.offline = False
    ctx = daily.make_context(DAY, settings)
    with caplog.at_level(logging.WARNING, logger="pipeline.feeds.ingest"):
        result = daily.run_stage(ctx, "ingest_feeds")  # default ESCMON_INGEST_MAX_FAILED_SHARE=1
    assert result.status == "ok" and result.counts["feeds_failed"] == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "1 of 1 feeds read could not be read: gone-news: " in warning.getMessage()

    settings.ingest_max_failed_share = 0.5
    with store.session_scope(ctx.engine) as session:  # due again at once
        from sqlalchemy import update

        from pipeline.tables import Feed

        session.execute(update(Feed).values(next_attempt_at=None))
    failing = daily.make_context(DAY, settings)
    with pytest.raises(daily.StageError, match=r"1 of 1 feeds could not be read.*gone-news: "):
        daily.run_stage(failing, "ingest_feeds")
    with store.session_scope(ctx.engine) as session:
        run = session.execute(select(Run).where(Run.run_id == failing.run_id)).scalar_one()
    assert run.status == "failed" and run.counts["feeds_failed"] == 1  # counts kept
    assert "ESCMON_INGEST_MAX_FAILED_SHARE=0.5" in run.error
    retry = daily.make_context(DAY, settings)  # as Airflow's retry: the feed now backs off
    with pytest.raises(daily.StageError, match=r"1 of 1 feeds .*gone-news: .*next try"):
        daily.run_stage(retry, "ingest_feeds")
    retry.engine.dispose()
    ctx.engine.dispose()
    failing.engine.dispose()


def test_send_alerts_fails_when_a_pending_alert_cannot_be_sent(settings) -> None:
    from pipeline.signals import compute_signals
    from pipeline.tables import Alert
    from tests import scenario
    from tests.smtp_server import closed_port

    settings.alert_scopes = ["BLR"]
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    ctx = daily.make_context(yesterday, settings)
    built = scenario.quiet_then(ctx.engine, final_day=yesterday, final="spike")
    compute_signals(ctx.engine, days=built.days)
    assert daily.run_stage(ctx, "detect").counts["alerts"] == 1
    ctx.extra["smtp"] = {"smtp_host": "127.0.0.1", "smtp_port": closed_port()}
    settings.alert_to = ["desk@example.test"]
    with pytest.raises(daily.StageError, match=r"stage 'send_alerts' failed: 1 alert\(s\)"):
        daily.run_stage(ctx, "send_alerts")
    with store.session_scope(ctx.engine) as session:
        alert = session.execute(select(Alert)).scalar_one()
        run = session.execute(select(Run).where(Run.stage == "send_alerts")).scalar_one()
    assert alert.status == "pending"  # the next run (or Airflow's retry) sends it
    assert (run.status, run.counts["failed"]) == ("failed", 1)
    ctx.engine.dispose()


def test_escmon_run_from_to_rebuilds_the_range(settings, monkeypatch, capsys) -> None:
    from pipeline.cli import main
    from pipeline.config import get_settings

    settings.feeds_file.write_text("", encoding="utf-8")
    for key, value in {
        "ESCMON_DATABASE_URL": settings.database_url,
        "ESCMON_SEEDS_DIR": str(settings.seeds_dir),
        "ESCMON_MODELS_DIR": str(settings.models_dir),
        "ESCMON_FEEDS_FILE": str(settings.feeds_file),
        "ESCMON_OFFLINE": "true",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        args = ["run", "--from", "2024-08-19", "--to", "2024-08-21"]
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "Rebuild 2024-08-19 to 2024-08-21" in out and "fetch_skipped=1" in out
        engine = store.make_engine(settings.database_url)
        counts = store.table_counts(engine)
        assert counts["sentences"] > 40
        assert main(args) == 0
        again = store.table_counts(engine)
        assert again.pop("runs") == 2 * counts.pop("runs")
        assert again == counts
        engine.dispose()
        for bad, message in [
            (["run", "--date", "2024-08-20", "--from", "2024-08-20"], "either --date"),
            (["run", "--from", "2024-08-20"], "needs both --from and --to"),
            (["run", "--from", "2024-08-21", "--to", "2024-08-20"], "is after --to"),
            (["run", "--from", "2024-8-1", "--to", "2024-08-20"], "--from must be YYYY-MM-DD"),
            (["run", "--rescore"], "--rescore rebuilds days"),
        ]:
            assert main(bad) == 1
            assert message in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
