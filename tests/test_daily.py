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
