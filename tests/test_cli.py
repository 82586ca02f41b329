"""The CLI contract: help with examples, one-line errors, exit codes."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest
import typer.main

from pipeline.cli import app, main
from pipeline.config import get_settings
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def fresh_settings():
    """Each test reads ESCMON_* afresh (settings are cached per process)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _tree(command=None, prefix=()):
    """Every (path, command) of the CLI, the groups (the root first) and their commands."""
    command = typer.main.get_command(app) if command is None else command
    yield prefix, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _tree(sub, (*prefix, name))


def _commands():
    return [(path, c) for path, c in _tree() if not getattr(c, "commands", None)]


def _groups():
    return [(path, c) for path, c in _tree() if getattr(c, "commands", None)]


def _command_id(value) -> str:
    return " ".join(value) if isinstance(value, tuple) else ""


@pytest.mark.parametrize(("path", "group"), list(_groups()), ids=_command_id)
def test_every_group_help_has_an_example(path, group) -> None:
    example = (group.help or "").partition("Example:")[2].strip()
    assert example.startswith(" ".join(("escmon", *path))), f"escmon {path} lacks an example"


@pytest.mark.parametrize(("path", "command"), list(_commands()), ids=_command_id)
def test_every_command_help_has_an_example(path, command) -> None:
    example = (command.help or "").partition("Example:")[2].strip()
    assert "escmon " + " ".join(path) in example, f"escmon {' '.join(path)} lacks an example"


def test_config_masks_secrets(monkeypatch, capsys) -> None:
    from pipeline.config import get_settings

    monkeypatch.setenv("ESCMON_SMTP_PASSWORD", "hunter2")
    monkeypatch.setenv("ESCMON_DATABASE_URL", "postgresql+psycopg://me:s3cret@db/escmon")
    get_settings.cache_clear()
    assert main(["config", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["smtp_password"] == "***"
    assert "s3cret" not in shown["database_url"]
    assert shown["database_url"].startswith("postgresql+psycopg://me:***@db")


def test_config_reads_toml_file(tmp_path, monkeypatch, capsys) -> None:
    from pipeline.config import get_settings

    (tmp_path / "escmon.toml").write_text('alert_min_count = 9\nalert_to = ["a@x.org"]\n')
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    assert main(["config", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["alert_min_count"] == 9
    assert shown["alert_to"] == ["a@x.org"]


def test_env_list_is_comma_separated(monkeypatch) -> None:
    from pipeline.config import Settings

    monkeypatch.setenv("ESCMON_ALERT_TO", "a@x.org, b@y.org")
    assert Settings().alert_to == ["a@x.org", "b@y.org"]


def test_invalid_setting_is_one_error_line(monkeypatch, capsys) -> None:
    from pipeline.config import get_settings

    monkeypatch.setenv("ESCMON_SMTP_PORT", "not-a-port")
    get_settings.cache_clear()
    assert main(["config"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("Error: invalid setting ESCMON_SMTP_PORT")
    assert len(error.splitlines()) == 1


def test_run_on_unmigrated_database_says_how_to_fix(tmp_path, monkeypatch, capsys) -> None:
    from pipeline.config import get_settings

    monkeypatch.setenv("ESCMON_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    get_settings.cache_clear()
    assert main(["run", "--date", "2024-08-10"]) == 1
    assert "run `escmon db upgrade`" in capsys.readouterr().err


def test_bad_date_and_unknown_stage(capsys) -> None:
    assert main(["run", "--date", "10/08/2024"]) == 1
    assert "--date must be YYYY-MM-DD" in capsys.readouterr().err
    assert main(["run", "--stage", "nope"]) == 2  # a usage error, as for any closed choice
    assert "'nope' is not one of 'ingest_seeds'" in capsys.readouterr().err


def test_usage_error_exits_2(capsys) -> None:
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_db_upgrade_then_run_twice(tmp_path, monkeypatch, capsys) -> None:
    from pipeline.config import get_settings
    from tests.conftest import REPO

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ESCMON_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'e.db'}")
    monkeypatch.setenv("ESCMON_SEEDS_DIR", str(REPO / "seeds"))
    monkeypatch.setenv("ESCMON_MODELS_DIR", str(REPO / "models"))
    monkeypatch.setenv("ESCMON_FEEDS_FILE", str(tmp_path / "feeds.toml"))
    monkeypatch.setenv("ESCMON_OFFLINE", "true")
    get_settings.cache_clear()
    assert main(["db", "upgrade"]) == 0
    assert main(["run", "--date", "2024-08-10"]) == 0
    first = capsys.readouterr().out
    assert main(["run", "--date", "2024-08-10"]) == 0
    second = capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert "articles_new=1" in first
    assert "articles_new" not in second  # zero counts are left out of the summary
    assert "sentences_new" not in second


def test_log_level_shows_info_records(tmp_path, monkeypatch, capsys) -> None:
    from pipeline.config import get_settings

    monkeypatch.setenv("ESCMON_DATABASE_URL", f"sqlite:///{tmp_path / 'l.db'}")
    monkeypatch.setenv("ESCMON_SEEDS_DIR", str(REPO / "seeds"))
    monkeypatch.setenv("ESCMON_MODELS_DIR", str(REPO / "models"))
    get_settings.cache_clear()
    assert main(["db", "upgrade"]) == 0
    backfill = ["run", "--from", "2024-08-01", "--to", "2024-08-02", "--stage", "ingest_feeds"]
    assert main(backfill) == 0
    assert "fetching skipped" not in capsys.readouterr().err  # default: WARNING and above

    monkeypatch.setenv("ESCMON_LOG_LEVEL", "info")
    get_settings.cache_clear()
    assert main(backfill) == 0
    assert "INFO: ingest_feeds: fetching skipped for 2024-08-01" in capsys.readouterr().err


def test_bad_log_level_is_one_error_line(monkeypatch, capsys) -> None:
    from pipeline.config import get_settings

    monkeypatch.setenv("ESCMON_LOG_LEVEL", "loud")
    get_settings.cache_clear()
    assert main(["config"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("Error: invalid setting ESCMON_LOG_LEVEL")
    assert "'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in error


def _write_counts(path, counts, totals=None) -> None:
    import datetime as dt

    header = "date,count,total" if totals else "date,count"
    lines = [header]
    for i, count in enumerate(counts):
        day = (dt.date(2024, 8, 1) + dt.timedelta(days=i)).isoformat()
        lines.append(f"{day},{count},{totals[i]}" if totals else f"{day},{count}")
    path.write_text("\n".join(lines) + "\n")


def test_detect_jsonl_one_row_per_day(tmp_path, capsys) -> None:
    counts = [3, 4, 2, 3, 5, 4, 3, 2, 4, 3, 30]
    _write_counts(tmp_path / "c.csv", counts)
    assert main(["detect", "--input", str(tmp_path / "c.csv"), "--method", "ears-c1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["observed"] for row in rows] == counts
    assert set(rows[0]) == {"date", "observed", "statistic", "upper_bound", "alarm"}
    assert rows[0]["upper_bound"] is None and rows[0]["alarm"] is False
    assert rows[-1]["alarm"] is True
    assert rows[-2]["alarm"] is False


def test_detect_share_needs_totals(tmp_path, capsys) -> None:
    _write_counts(tmp_path / "c.csv", [1, 2, 3])
    assert main(["detect", "--input", str(tmp_path / "c.csv"), "--method", "share"]) == 1
    assert "needs a 'total' column" in capsys.readouterr().err


def test_detect_table_and_errors(tmp_path, capsys) -> None:
    _write_counts(tmp_path / "c.csv", [1, 2, 3], totals=[10, 10, 10])
    args = ["detect", "--input", str(tmp_path / "c.csv"), "--method", "share"]
    assert main([*args, "--format", "table"]) == 0
    assert "upper_bound" in capsys.readouterr().out
    assert main(["detect", "--input", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv' does not exist" in capsys.readouterr().err
    assert main(["detect", "--input", str(tmp_path / "c.csv"), "--method", "ears-c9"]) == 2
    assert "'ears-c9' is not one of 'ears-c1'" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("date,count\n2024-08-01,x\n")
    assert main(["detect", "--input", str(tmp_path / "bad.csv")]) == 1
    assert "bad.csv" in capsys.readouterr().err


def test_alerts_list_show_send(tmp_path, monkeypatch, capsys) -> None:
    import datetime as dt

    from pipeline import daily, store
    from pipeline.config import get_settings
    from pipeline.signals import compute_signals
    from tests.scenario import quiet_then
    from tests.smtp_server import running_smtp_server

    url = f"sqlite:///{tmp_path / 'a.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    day = dt.date(2024, 8, 10)
    scenario = quiet_then(engine, final_day=day, final="spike")
    compute_signals(engine, days=scenario.days)
    monkeypatch.setenv("ESCMON_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        ctx = daily.make_context(day, get_settings())
        daily.run_stage(ctx, "detect")
        assert main(["alerts", "list", "--format", "jsonl"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert {row["scope"] for row in rows} >= {"BLR"}
        assert all(row["status"] == "pending" for row in rows)
        assert main(["alerts", "list", "--status", "sent", "--format", "jsonl"]) == 0
        assert capsys.readouterr().out == ""
        assert main(["alerts", "list", "--status", "pendign"]) == 2  # a typo is an error
        assert "'pendign' is not one of 'pending'" in capsys.readouterr().err
        first = rows[0]["id"]
        assert main(["alerts", "show", str(first)]) == 0
        assert "troops were deployed" in capsys.readouterr().out
        assert main(["alerts", "show", "999"]) == 1
        assert "no alert with id 999" in capsys.readouterr().err
        assert main(["alerts", "send"]) == 0
        assert "not_configured=1" in capsys.readouterr().out
        with running_smtp_server() as server:
            for key, value in server.overrides().items():
                text = ",".join(value) if isinstance(value, list) else str(value)
                monkeypatch.setenv(f"ESCMON_{key.upper()}", text)
            get_settings.cache_clear()
            assert main(["alerts", "send"]) == 0
            assert main(["alerts", "send"]) == 0
            assert len(server.messages) == len(rows)
    finally:
        get_settings.cache_clear()
        engine.dispose()


def _use_registry(monkeypatch, path) -> None:
    from pipeline.config import get_settings

    monkeypatch.setenv("ESCMON_FEEDS_FILE", str(path))
    get_settings.cache_clear()


def test_feeds_add_list_check_remove(tmp_path, monkeypatch, capsys, httpserver) -> None:
    from tests.conftest import SHARED

    registry = tmp_path / "feeds.toml"
    _use_registry(monkeypatch, registry)
    feed_bytes = (SHARED / "corpora/feeds/real/bbc-world.xml").read_bytes()
    httpserver.expect_request("/bbc.xml").respond_with_data(
        feed_bytes, content_type="application/rss+xml"
    )
    httpserver.expect_request("/missing.xml").respond_with_data("gone", status=404)
    url = httpserver.url_for("/bbc.xml")
    assert main(["feeds", "add", "bbc", url, "--country", "GBR", "--language", "en"]) == 0
    assert main(["feeds", "add", "bbc", url]) == 1
    assert "bbc" in capsys.readouterr().err
    assert main(["feeds", "list", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["url"], r["verified"]) for r in rows] == [("bbc", url, False)]
    assert main(["feeds", "check", "bbc", "--mark-verified"]) == 0
    assert "ok, HTTP 200, 33 entries" in capsys.readouterr().out
    assert main(["feeds", "list", "--format", "jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    assert main(["feeds", "check", "nope"]) == 1
    assert "no feed named 'nope'" in capsys.readouterr().err
    assert main(["feeds", "check", httpserver.url_for("/missing.xml")]) == 1
    captured = capsys.readouterr()
    assert "HTTP 404" in captured.out
    assert "could not be read" in captured.err
    assert main(["feeds", "remove", "bbc"]) == 0
    assert main(["feeds", "remove", "bbc"]) == 1
    assert "no feed named 'bbc'" in capsys.readouterr().err


def test_many_unreachable_feeds_are_named_briefly_and_feeds_status_has_them_all(
    tmp_path, monkeypatch, capsys, caplog
) -> None:
    """Twelve feeds that refuse connections: the run names ten and counts the rest (in its
    summary and in its log line, then again while they back off); `feeds status` has all."""
    import logging

    from pipeline.config import get_settings
    from tests.smtp_server import closed_port

    port = closed_port()
    names = [f"gone-{i:02d}" for i in range(12)]
    (tmp_path / "feeds.toml").write_text(
        "".join(
            f'[[feeds]]\nname = "{name}"\nurl = "http://127.0.0.1:{port}/{name}.xml"\n'
            'language = "en"\nfulltext = "never"\n'
            for name in names
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("ESCMON_DATABASE_URL", f"sqlite:///{tmp_path / 'f.db'}")
    monkeypatch.setenv("ESCMON_FEEDS_FILE", str(tmp_path / "feeds.toml"))
    monkeypatch.setenv("ESCMON_OFFLINE", "false")
    get_settings.cache_clear()
    assert main(["db", "upgrade"]) == 0
    for backing_off in (False, True):
        capsys.readouterr()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pipeline.feeds.ingest"):
            assert main(["run", "--stage", "ingest_feeds"]) == 0
        err = capsys.readouterr().err
        assert "12 feed(s) could not be read this run:" in err
        assert "  gone-09: " in err and "gone-10" not in err
        assert "... and 2 more: escmon feeds status --failing" in err
        [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        heading = "backing off after failing" if backing_off else "12 of 12 feeds read"
        assert heading in warning and "gone-09" in warning and "gone-10" not in warning
        assert warning.endswith("; and 2 more (escmon feeds status --failing)")

    assert main(["feeds", "status", "--failing", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["name"] for row in rows] == names
    assert all(row["failures"] == 1 and row["next_try"] and row["error"] for row in rows)
    assert main(["feeds", "status", "--format", "table"]) == 0
    assert "12 feed(s), 12 failing" in capsys.readouterr().out


def test_shipped_registry_lists(monkeypatch, capsys) -> None:
    from tests.conftest import REPO

    _use_registry(monkeypatch, REPO / "seeds" / "feeds.toml")
    assert main(["feeds", "list", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) >= 10
    assert {"BLR", "UKR", "RUS", "POL"} <= {r["country"] for r in rows}


def _model_env(monkeypatch, models_dir, seeds_dir=None) -> None:
    from pipeline.config import get_settings
    from tests.conftest import REPO

    monkeypatch.setenv("ESCMON_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("ESCMON_SEEDS_DIR", str(seeds_dir or REPO / "seeds"))
    get_settings.cache_clear()


def test_classify_jsonl_in_input_order(tmp_path, monkeypatch, capsys) -> None:
    from tests.conftest import REPO

    _model_env(monkeypatch, REPO / "models")
    source = tmp_path / "in.jsonl"
    texts = [
        "Russia deployed additional troops to the border on Monday.",
        "The two sides agreed to a ceasefire and began withdrawing forces.",
        "The museum reopened after renovation.",
    ]
    source.write_text("\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate(texts)))
    assert main(["classify", "--input", str(source), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == texts
    assert [r["id"] for r in rows] == [0, 1, 2]
    assert [r["label"] for r in rows] == ["escalation", "deescalation", "neutral"]
    for row in rows:
        assert {"p_escalation", "p_deescalation", "p_neutral", "model_version"} <= set(row)
        total = row["p_escalation"] + row["p_deescalation"] + row["p_neutral"]
        assert abs(total - 1) < 1e-5
    plain = tmp_path / "in.txt"
    plain.write_text("\n".join(texts) + "\n")
    assert main(["classify", "--input", str(plain), "--explain"]) == 0
    explained = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in explained] == ["escalation", "deescalation", "neutral"]
    assert explained[0]["cues"][0]["cameo"]
    assert main(["classify", texts[0], "--format", "table"]) == 0
    assert "escalation" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "language", "label"),
    [
        ("Российские войска обстреляли Харьков ночью.", "ru", "escalation"),
        ("Російські війська обстріляли Харків уночі.", "uk", "escalation"),
        ("Расійскія войскі абстралялі Харкаў уначы.", "be", "escalation"),
        ("Rosyjskie wojska ostrzelały w nocy Charków.", "pl", "escalation"),
        ("Стороны договорились о прекращении огня и обмене пленными.", "ru", "deescalation"),
        ("Сторони домовилися про обмін полоненими.", "uk", "deescalation"),
        ("Polska otworzyła przejście graniczne z Białorusią.", "pl", "deescalation"),
    ],
)
def test_classify_reads_the_region_languages(monkeypatch, capsys, text, language, label) -> None:
    _model_env(monkeypatch, REPO / "models")
    assert main(["classify", text]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["language"], row["label"]) == (language, label)
    assert row["model_version"].startswith("1.")  # the multilingual model, not the English


ENGLISH_PULLBACK = "Russia withdrew its troops from the border with Ukraine."


def test_classify_leaves_other_languages_unlabelled(monkeypatch, capsys) -> None:
    _model_env(monkeypatch, REPO / "models")
    assert main(["classify", "Die Truppen wurden abgezogen.", ENGLISH_PULLBACK]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["language"], r["label"]) for r in rows] == [("de", None), ("en", "deescalation")]
    assert rows[0]["note"] == "language de is not scored"
    assert main(["classify", "--language", "ru", "Troops were withdrawn."]) == 0
    [forced] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert forced["language"] == "ru" and forced["model_version"].startswith("1.")


def test_classify_errors(tmp_path, monkeypatch, capsys) -> None:

    _model_env(monkeypatch, tmp_path / "no-models")
    assert main(["classify", "Troops moved."]) == 1
    assert "run `escmon train` first" in capsys.readouterr().err
    assert main(["classify"]) == 1
    assert "nothing to classify" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "no"}\n')
    assert main(["classify", "--input", str(bad)]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err


def test_evaluate_prints_scores(tmp_path, monkeypatch, capsys) -> None:
    from tests.conftest import REPO

    _model_env(monkeypatch, REPO / "models")
    labelled = tmp_path / "l.jsonl"
    labelled.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"text": "Russia deployed additional troops to the border.", "label": "escalation"},
                {"text": "The sides agreed to a ceasefire.", "label": "deescalation"},
                {"text": "The museum reopened after renovation.", "label": "neutral"},
            ]
        )
    )
    assert main(["evaluate", "--input", str(labelled)]) == 0
    output = capsys.readouterr().out
    assert "macro-F1: 1.0000" in output
    assert "Confusion matrix" in output
    (tmp_path / "x.jsonl").write_text('{"text": "a", "label": "maybe"}\n')
    assert main(["evaluate", "--input", str(tmp_path / "x.jsonl")]) == 1
    assert "needs a label" in capsys.readouterr().err


def test_evaluate_errors_lists_the_mistakes_by_class(tmp_path, monkeypatch, capsys) -> None:
    _model_env(monkeypatch, REPO / "models")
    labelled = tmp_path / "l.jsonl"
    rows = [
        {"text": "Russia deployed additional troops to the border.", "label": "escalation"},
        {"text": "The museum reopened after renovation.", "label": "escalation"},  # wrong
    ]
    labelled.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["evaluate", "--input", str(labelled), "--errors"]) == 0
    output = capsys.readouterr().out
    assert "escalation -> neutral (1)" in output
    assert "The museum reopened after renovation." in output
    assert "Russia deployed additional troops" not in output.split("escalation -> neutral")[1]


def test_train_and_if_missing(tmp_path, monkeypatch, capsys) -> None:
    import shutil

    from tests.conftest import REPO

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(REPO / "seeds" / "000_68907020d2f59e7e.labels.jsonl", seeds)
    shipped = tmp_path / "models"
    _model_env(monkeypatch, shipped, seeds)
    models = Path(os.environ["ESCMON_DATA_DIR"]) / "models"  # where run-time models go
    assert main(["train", "--shared-dir", str(tmp_path / "none")]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["train", "--no-devset"]) == 0
    assert "seed CV macro-F1" in capsys.readouterr().out
    assert len(list(models.glob("escalation-*.skops"))) == 1
    assert len(list(models.glob("escalation-*.card.md"))) == 1
    assert not shipped.exists()  # the shipped models folder is never written
    assert main(["train", "--if-missing"]) == 0
    assert "not retraining" in capsys.readouterr().out
    # A release build writes the seeds' model where it is told (models/ to ship it).
    assert main(["train", "--no-devset", "--family", "en", "--out", str(shipped)]) == 0
    assert f"wrote {shipped}" in capsys.readouterr().out
    assert [p.suffix for p in sorted(shipped.iterdir())] == [".json", ".md", ".skops"]
    (seeds / "broken.labels.jsonl").write_text('{"text": "x", "label": "hot"}\n')
    assert main(["train", "--no-devset"]) == 1
    assert "broken.labels.jsonl:1" in capsys.readouterr().err


def test_training_status_shows_the_finished_folds_and_then_lets_go_of_the_log() -> None:
    from rich.console import Console
    from rich.status import Status

    from pipeline.cli import _StatusHandler, _training_status

    status = Status("training", console=Console(file=io.StringIO(), force_terminal=True))
    _StatusHandler(status, "training the en classifier").emit(
        logging.makeLogRecord({"msg": "cross-validation: %d of %d folds done", "args": (2, 5)})
    )
    assert status.status == "training the en classifier: cross-validation: 2 of 5 folds done..."

    loggers = [logging.getLogger(name) for name in ("pipeline.classify", "pipeline.encoder")]
    before = [(logger.level, list(logger.handlers)) for logger in loggers]
    with _training_status("training"):
        for logger in loggers:  # the folds, and before them the embedded sentences
            assert logger.isEnabledFor(logging.INFO)
            assert any(isinstance(h, _StatusHandler) for h in logger.handlers)
    assert [(logger.level, list(logger.handlers)) for logger in loggers] == before


def test_train_the_multilingual_model(tmp_path, monkeypatch, capsys) -> None:
    from pipeline.classify import MULTI_SERIES
    from tests.conftest import REPO

    languages = tmp_path / "seeds" / "languages"
    languages.mkdir(parents=True)
    for path in sorted((REPO / "seeds" / "languages").glob("news_??.labels.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        (languages / path.name).write_text("\n".join(lines[::8]) + "\n", encoding="utf-8")
    _model_env(monkeypatch, tmp_path / "models", tmp_path / "seeds")
    monkeypatch.setenv("ESCMON_SECOND_OPINION", "false")  # a fast model: seconds, not a minute
    models = Path(os.environ["ESCMON_DATA_DIR"]) / "models"  # where run-time models go
    assert main(["train", "--family", "multi"]) == 0
    printed = capsys.readouterr().out
    assert f"escalation-multi-{MULTI_SERIES}-" in printed
    assert "grouped CV macro-F1 ru 0." in printed
    assert [p.name.split(f"-{MULTI_SERIES}-")[0] for p in models.glob("*.skops")] == [
        "escalation-multi"
    ]
    assert main(["train", "--family", "multi", "--if-missing"]) == 0
    assert "not retraining" in capsys.readouterr().out
    (languages / "x.labels.jsonl").write_text('{"text": "Truppen", "label": "neutral"}\n')
    assert main(["train", "--family", "multi"]) == 1
    assert "language" in capsys.readouterr().err


def test_format_auto_prints_json_lines_when_piped(monkeypatch, capsys) -> None:
    _use_registry(monkeypatch, REPO / "seeds" / "feeds.toml")
    assert main(["feeds", "list"]) == 0  # captured stdout is not a terminal
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert {"name", "url", "language"} <= set(first)


def test_rescore_is_a_command_and_the_old_flag_still_works(tmp_path, monkeypatch, capsys) -> None:
    from pipeline import store
    from pipeline.config import get_settings

    url = f"sqlite:///{tmp_path / 'r.db'}"
    store.upgrade(url)
    monkeypatch.setenv("ESCMON_DATABASE_URL", url)
    get_settings.cache_clear()
    assert main(["rescore"]) == 0
    assert capsys.readouterr().out.strip() == "sentences_scored=0"  # an empty store
    assert main(["classify", "--rescore"]) == 0
    captured = capsys.readouterr()
    assert "deprecated; use `escmon rescore`" in captured.err


def test_db_downgrade_one_step_asks_first_and_round_trips(db_url, monkeypatch, capsys) -> None:
    from pipeline import store

    monkeypatch.setenv("ESCMON_DATABASE_URL", db_url)
    get_settings.cache_clear()
    engine = store.make_engine(db_url)
    head = store.current_revision(engine)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    assert main(["db", "downgrade", "-1"]) == 130  # answered no: nothing dropped
    assert store.current_revision(engine) == head
    assert main(["db", "downgrade", "-1", "--yes"]) == 0
    assert store.current_revision(engine) not in (None, head)
    assert main(["db", "upgrade"]) == 0
    assert store.current_revision(engine) == head
    engine.dispose()
