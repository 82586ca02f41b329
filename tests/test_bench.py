"""The benchmark entry point runs at a tiny size, so it cannot rot (no time is asserted)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from bench import corpus, runner
from tests.conftest import POSTGRES_ENV, postgres_url_or_skip

ARTICLES = 20


def _expected_keys(postgres: bool) -> set[str]:
    """The required keys (the PostgreSQL figure only when a server is configured)."""
    keys = set(runner.REQUIRED_KEYS)
    if not postgres:
        keys.discard("end_to_end_sentences_per_s_postgres")
    return keys


def _check(results: dict, output: Path, expected: set[str]) -> None:
    assert json.loads(output.read_text(encoding="utf-8")) == results
    missing = expected - results.keys()
    assert not missing, f"missing keys {sorted(missing)}; notes: {results['notes']}"
    for key in expected - {"machine"}:
        value = results[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value) and value >= 0, (key, value)
    assert results["articles"] == ARTICLES
    machine = results["machine"]
    assert {"cpu", "cores", "memory_gib", "python", "platform"} <= machine.keys()


@pytest.mark.slow  # fits a model on every seed label when the cache is cold
@pytest.mark.usefixtures("shared_dir")
def test_bench_writes_every_key(tmp_path: Path) -> None:
    """One tiny run; with ESCMON_TEST_POSTGRES_URL set it covers PostgreSQL too."""
    postgres = postgres_url_or_skip() if os.environ.get(POSTGRES_ENV) else None
    output = tmp_path / "results" / "latest.json"
    results = runner.run(
        ARTICLES, output=output, postgres=postgres, min_seconds=0.0, log=lambda _line: None
    )
    _check(results, output, _expected_keys(postgres=postgres is not None))
    assert results["end_to_end_sentences"] > 0
    if postgres is not None:
        assert results["end_to_end_sentences_postgres"] == results["end_to_end_sentences"]


@pytest.mark.usefixtures("shared_dir")
def test_mixed_corpus_is_half_english_and_an_eighth_each_language() -> None:
    from collections import Counter

    from pipeline.language import sentence_language

    mixed = corpus.generate_mixed(80)
    assert Counter(a.language for a in mixed) == {"en": 40, "ru": 10, "uk": 10, "be": 10, "pl": 10}
    assert len({a.guid for a in mixed}) == 80
    belarusian = next(a for a in mixed if a.language == "be")
    body = belarusian.text.split("\n\n")[1]
    assert sentence_language(body) == "be"


@pytest.mark.usefixtures("shared_dir")
def test_corpus_articles_are_distinct_and_copies_share_a_story() -> None:
    from pipeline.dedup import content_hash

    plain = corpus.generate(50)
    assert len({content_hash(a.text) for a in plain}) == 50
    assert len({a.story for a in plain}) == 50
    mixed = corpus.generate(50, syndicated=0.3)
    assert len({content_hash(a.text) for a in mixed}) == 50
    assert len({a.guid for a in mixed}) == 50
    assert len({a.story for a in mixed}) == 35
    assert corpus.generate(50, syndicated=0.3) == mixed  # deterministic


def test_cli_rejects_a_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        runner.main(["--articles", "0"])
    assert "--articles must be at least 1" in capsys.readouterr().err


def test_bench_settings_read_english_only_without_a_multilingual_model(tmp_path: Path) -> None:
    from bench.e2e import bench_settings

    models = tmp_path / "models"
    models.mkdir()
    (models / "escalation-2.0-0123456789.skops").touch()
    assert bench_settings("sqlite://", models, tmp_path).multi_model_name == ""
    (models / "escalation-multi-1.0-0123456789.skops").touch()
    assert bench_settings("sqlite://", models, tmp_path).multi_model_name == "escalation-multi"


def test_bench_uses_the_shipped_release_of_the_seed_labels(tmp_path: Path) -> None:
    """The bench times the model users get, fitted temperature included, not a refit."""
    from bench.model import REPO, fit_model
    from pipeline.classify import MODEL_NAME

    version = fit_model(tmp_path)
    shipped = REPO / "models" / f"{MODEL_NAME}-{version}.skops"
    if not shipped.is_file():
        pytest.skip(f"seeds/ changed since the release in models/ (now {version})")
    assert (tmp_path / shipped.name).read_bytes() == shipped.read_bytes()
