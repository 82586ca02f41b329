"""The classify stage's imports: a run with nothing to score loads no model and no
scikit-learn; the stages before it never import scikit-learn at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

HEAVY = ("sklearn", "skops", "scipy", "pipeline.classify", "pipeline.lexicon")

# Runs the given stages of one day in a fresh interpreter and prints what they did and
# which heavy modules were imported by the end.
PROBE = """
import datetime as dt, json, sys
from pipeline.config import Settings
from pipeline.daily import make_context, run_stage
settings = Settings(database_url=sys.argv[1], seeds_dir=sys.argv[2], models_dir=sys.argv[3],
                    offline=True)
ctx = make_context(dt.date(2024, 8, 20), settings)
counts = {name: run_stage(ctx, name).counts for name in sys.argv[4:]}
heavy = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({"counts": counts, "heavy": heavy}))
"""


def _stages_in_a_fresh_process(url: str, *stages: str) -> dict:
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    argv = [url, str(REPO / "seeds"), str(REPO / "models"), *stages]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_a_classify_rerun_with_nothing_pending_imports_no_scikit_learn(tmp_path: Path) -> None:
    from pipeline import store

    url = f"sqlite:///{tmp_path / 'escmon.db'}"
    store.upgrade(url)
    before = _stages_in_a_fresh_process(url, "ingest_seeds", "ingest_feeds", "split")
    assert before["counts"]["split"]["sentences_new"] > 0
    assert before["heavy"] == []  # ingest and split never need scikit-learn
    scored = _stages_in_a_fresh_process(url, "classify")
    assert scored["counts"]["classify"]["sentences_scored"] > 0
    assert "sklearn" in scored["heavy"]  # the probe sees a real load
    rerun = _stages_in_a_fresh_process(url, "classify")
    assert rerun["counts"]["classify"] == {"sentences_scored": 0}
    assert rerun["heavy"] == []
