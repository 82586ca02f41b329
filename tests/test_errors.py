"""What users get wrong, and what breaks under them: one ``Error:`` line, exit 1, no traceback.

Each case drives :func:`pipeline.cli.main` with ``ESCMON_*`` set in the environment and
real files and databases: SQLite files, the test PostgreSQL (and a local TCP proxy to it
that goes away mid-run), a closed local port. The last tests guard the import cost of
``escmon --help`` and ``escmon feeds list`` by counting modules, not time.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipeline import store
from pipeline.cli import main
from pipeline.config import get_settings
from tests.conftest import REPO, postgres_schema_url, postgres_url_or_skip

SEEDS = REPO / "seeds"
CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/escmon"  # nothing listens on 1


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh working folder and settings: seeds from the repo, offline, no escmon.toml."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("ESCMON_") and name != "ESCMON_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("ESCMON_SEEDS_DIR", str(SEEDS))
    monkeypatch.setenv("ESCMON_MODELS_DIR", str(REPO / "models"))
    monkeypatch.setenv("ESCMON_OFFLINE", "true")
    monkeypatch.setenv("ESCMON_RUN_LOCK_TIMEOUT", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _env(monkeypatch: pytest.MonkeyPatch, **values: str | Path) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"ESCMON_{name.upper()}", str(value))
    get_settings.cache_clear()


def _registry(path: Path) -> Path:
    path.write_text('[[feeds]]\nname = "one"\nurl = "https://e.test/feed"\n', encoding="utf-8")
    return path


def assert_one_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """``escmon ARGV`` exits 1 with exactly one ``Error:`` line containing every needle."""
    code = main(argv)
    error = _only_error(code, capsys.readouterr().err)
    for needle in needles:
        assert needle in error, error
    return error


# --- the feed registry ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["feeds", "list"], ["feeds", "remove", "one"], ["feeds", "check", "one"], ["run"]],
    ids=" ".join,
)
def test_a_missing_feeds_file_is_an_error_not_no_feeds(monkeypatch, capsys, tmp_path, argv):
    _env(monkeypatch, feeds_file=tmp_path / "nope.toml", offline="false")
    _env(monkeypatch, database_url=f"sqlite:///{tmp_path / 'e.db'}")
    assert_one_error(capsys, argv, "ESCMON_FEEDS_FILE", "nope.toml", "does not exist")


def test_a_missing_feeds_file_offline_warns_and_add_creates_it(monkeypatch, capsys, tmp_path):
    registry = tmp_path / "feeds.toml"
    _env(monkeypatch, feeds_file=registry, database_url=f"sqlite:///{tmp_path / 'e.db'}")
    assert main(["db", "upgrade"]) == 0
    assert main(["run", "--stage", "ingest_feeds"]) == 0  # offline: nothing would be fetched
    err = capsys.readouterr().err
    assert "warning: ESCMON_FEEDS_FILE names" in err and "Error" not in err
    assert main(["feeds", "add", "one", "https://e.test/feed"]) == 0
    assert not registry.exists()  # the shipped list is never written: the data folder's is
    assert (tmp_path / "var" / "feeds.toml").is_file()  # the default data folder, var/


@pytest.mark.parametrize(
    "argv", [["feeds", "list"], ["feeds", "add", "x", "https://e.test/x"], ["run"]], ids=" ".join
)
def test_a_feeds_file_that_is_a_folder(monkeypatch, capsys, tmp_path, argv):
    (tmp_path / "seeds").mkdir()
    _env(monkeypatch, feeds_file="seeds", database_url=f"sqlite:///{tmp_path / 'e.db'}")
    assert_one_error(capsys, argv, "ESCMON_FEEDS_FILE", "is a folder", "seeds/feeds.toml")


# --- the database URL -------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["run"], ["db", "upgrade"], ["alerts", "list"]], ids=" ".join)
@pytest.mark.parametrize(
    ("url", "needles"),
    [
        ("not a url", ("ESCMON_DATABASE_URL", "cannot parse", "sqlite:///")),
        ("postgresql+psycopg://u@host:port/db", ("ESCMON_DATABASE_URL", "cannot parse")),
        ("mysql://u@127.0.0.1/escmon", ("ESCMON_DATABASE_URL", "unsupported database 'mysql'")),
        ("postgresql+nodriver://u@h/db", ("ESCMON_DATABASE_URL", "not installed")),
        (CLOSED_PORT_URL, ("ESCMON_DATABASE_URL", "127.0.0.1:1", "cannot reach", "start it")),
    ],
    ids=["unparsable", "bad-port", "mysql", "no-driver", "unreachable"],
)
def test_a_bad_database_url(monkeypatch, capsys, tmp_path, argv, url, needles):
    _env(monkeypatch, database_url=url, feeds_file=_registry(tmp_path / "feeds.toml"))
    assert_one_error(capsys, argv, *needles)


@pytest.mark.postgres
@pytest.mark.parametrize("argv", [["run"], ["db", "upgrade"], ["db", "current"]], ids=" ".join)
def test_a_missing_postgres_database(monkeypatch, capsys, tmp_path, argv):
    name = f"escmon_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_url_or_skip()).set(database=name).render_as_string(False)
    _env(monkeypatch, database_url=url, feeds_file=_registry(tmp_path / "feeds.toml"))
    assert_one_error(capsys, argv, "ESCMON_DATABASE_URL", name, "does not exist", "createdb")


def test_a_sqlite_folder_that_cannot_be_made(monkeypatch, capsys, tmp_path):
    (tmp_path / "var").write_text("a file where the folder should be")
    _env(monkeypatch, database_url="sqlite:///var/db/escmon.db")
    assert_one_error(capsys, ["db", "upgrade"], "ESCMON_DATABASE_URL", "var/db", "create it")


# --- permissions: file modes bind everyone but root, so root drops its override powers --

# setpriv (util-linux) runs the child without the capabilities that let root ignore modes.
DROP_ROOT_POWERS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def _cli_as_user(argv: list[str], cwd: Path, **settings: str) -> tuple[int, str]:
    """``escmon ARGV`` in a child process that file modes bind (root drops its powers)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: file modes cannot be tested")
        prefix = DROP_ROOT_POWERS
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ESCMON_")}
    env.update({f"ESCMON_{k.upper()}": v for k, v in settings.items()})
    env.update(ESCMON_SEEDS_DIR=str(SEEDS), ESCMON_OFFLINE="true", ESCMON_RUN_LOCK_TIMEOUT="0")
    code = "import sys; from pipeline.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [*prefix, sys.executable, "-c", code, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stderr


def _only_error(code: int, err: str) -> str:
    assert "Traceback" not in err, err
    assert code == 1, err
    # Logged warnings may name an exception class (the CLI prints them as "WARNING: ...").
    lines = [line for line in err.splitlines() if not line.startswith("WARNING: ")]
    errors = [line for line in lines if "Error" in line]
    assert len(errors) == 1 and errors[0].startswith("Error: "), err
    return errors[0]


def test_an_unwritable_var_folder(tmp_path):
    work = tmp_path / "work"
    (work / "var").mkdir(parents=True)
    _registry(work / "feeds.toml")
    os.chmod(work / "var", 0o555)
    code, err = _cli_as_user(["db", "upgrade"], work, feeds_file=str(work / "feeds.toml"))
    line = _only_error(code, err)
    assert "ESCMON_DATABASE_URL" in line and "var/escmon.db" in line
    assert "unable to open database file" in line and "writable" in line
    os.chmod(work, 0o555)  # and with no var/ at all, in a folder that cannot hold one
    shutil.rmtree(work / "var")
    code, err = _cli_as_user(["run"], work, feeds_file=str(work / "feeds.toml"))
    line = _only_error(code, err)
    assert "cannot create the folder var" in line and "ESCMON_DATABASE_URL" in line


def test_a_read_only_sqlite_file_during_a_run_keeps_the_stage_error(tmp_path):
    """The stage fails to write, then recording the failure fails too: the stage's own error
    is the one reported, with a note that it could not be recorded."""
    work = tmp_path / "ro"
    work.mkdir()  # the folder stays writable (WAL files, run lock): only the file is not
    url = f"sqlite:///{work / 'escmon.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    for leftover in work.glob("escmon.db-*"):
        leftover.unlink()
    os.chmod(work / "escmon.db", 0o444)
    _registry(work / "feeds.toml")
    code, err = _cli_as_user(
        ["run", "--date", "2024-08-10"], work, database_url=url, feeds_file=str(work / "feeds.toml")
    )
    line = _only_error(code, err)
    assert line.startswith("Error: stage 'ingest_seeds' failed: database sqlite:///")
    assert "readonly database" in line and "writable" in line and "ESCMON_DATABASE_URL" in line
    assert "nor could it be recorded in the runs table" in line


def test_a_read_only_sqlite_uri(monkeypatch, capsys, tmp_path):
    """The same failure through SQLite's own read-only mode, in this process."""
    path = tmp_path / "escmon.db"
    store.upgrade(f"sqlite:///{path}")
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    _env(monkeypatch, database_url=url, feeds_file=_registry(tmp_path / "feeds.toml"))
    line = assert_one_error(capsys, ["run"], "stage 'ingest_seeds' failed", "readonly database")
    assert "nor could it be recorded in the runs table" in line
    assert not (tmp_path / "file:").exists()  # the URI's folder is the file's own


# --- PostgreSQL going away mid-run ------------------------------------------------------


class VanishingServer:
    """A TCP proxy to PostgreSQL that, once a client sends ``trigger``, drops every
    connection and stops listening: the server is gone and reconnecting is refused."""

    def __init__(self, host: str, port: int, trigger: bytes) -> None:
        self.target, self.trigger = (host, port), trigger
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.gone = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket] = {}
        while not self.gone.is_set():
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    client, _ = self.listener.accept()
                    upstream = socket.create_connection(self.target)
                    peers[client], peers[upstream] = upstream, client
                    selector.register(client, selectors.EVENT_READ, "client")
                    selector.register(upstream, selectors.EVENT_READ, "server")
                    continue
                data = sock.recv(65536)
                if key.data == "client" and self.trigger in data:
                    self.gone.set()
                    break
                if not data:
                    other = peers.pop(sock)
                    peers.pop(other, None)
                    for s in (sock, other):
                        selector.unregister(s)
                        s.close()
                    continue
                peers[sock].sendall(data)
        for sock in list(peers):
            sock.close()
        self.listener.close()
        selector.close()

    def close(self) -> None:
        self.gone.set()
        self._thread.join(timeout=10)


@pytest.mark.postgres
def test_postgres_gone_mid_run(monkeypatch, capsys, tmp_path):
    with postgres_schema_url() as url:
        store.upgrade(url)
        parsed = make_url(url)
        proxy = VanishingServer(parsed.host or "127.0.0.1", parsed.port or 5432, b"INSERT INTO")
        try:
            through = parsed.set(host="127.0.0.1", port=proxy.port).update_query_dict(
                {"sslmode": "disable"}
            )
            _env(
                monkeypatch,
                database_url=through.render_as_string(hide_password=False),
                feeds_file=_registry(tmp_path / "feeds.toml"),
            )
            line = assert_one_error(
                capsys, ["run", "--date", "2024-08-10"], "stage 'ingest_seeds' failed"
            )
            assert proxy.gone.is_set()
            assert "ESCMON_DATABASE_URL" in line and "connection" in line
            assert "nor could it be recorded" in line
        finally:
            proxy.close()
        engine = create_engine(url)
        with engine.connect() as connection:  # nothing half-written: the batch rolled back
            assert connection.execute(text("SELECT count(*) FROM runs")).scalar_one() == 0
        engine.dispose()


# --- models -----------------------------------------------------------------------------

GOOD = next(REPO.glob("models/escalation-[0-9]*.skops"))  # the English model


def _models(tmp_path: Path, newest: bytes | None = None, card: str | None = None) -> Path:
    """A models folder with the shipped model, and a newer broken one when ``newest``."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(GOOD, models / GOOD.name)
    shutil.copy(GOOD.with_suffix(".card.json"), models / GOOD.with_suffix(".card.json").name)
    if newest is not None:
        bad = models / "escalation-9.9-0123456789.skops"
        bad.write_bytes(newest)
        later = {"trained_at": "2999-01-01T00:00:00+00:00"}
        bad.with_suffix(".card.json").write_text(card or json.dumps(later), encoding="utf-8")
    return models


def _broken(kind: str) -> bytes:
    data = GOOD.read_bytes()
    return {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "corrupt": data[:100] + bytes(256) + data[356:],
        "not-a-zip": b"this is not a model\n" * 50,
    }[kind]


@pytest.mark.parametrize("kind", ["empty", "truncated", "corrupt", "not-a-zip"])
def test_a_broken_only_model_stops_with_the_file_named(monkeypatch, capsys, tmp_path, kind):
    models = tmp_path / "models"
    models.mkdir()
    (models / GOOD.name).write_bytes(_broken(kind))
    _env(monkeypatch, models_dir=models)
    line = assert_one_error(capsys, ["classify", "Troops withdrew."], GOOD.name, "escmon train")
    assert "ESCMON_MODELS_DIR" in line


def test_a_corrupt_card_stops_with_the_card_named(monkeypatch, capsys, tmp_path):
    models = _models(tmp_path)
    (models / GOOD.with_suffix(".card.json").name).write_text('{"trained_at": ', "utf-8")
    _env(monkeypatch, models_dir=models)
    assert_one_error(capsys, ["classify", "Troops withdrew."], ".card.json", "unreadable")


@pytest.mark.parametrize("kind", ["truncated", "corrupt", "card"])
def test_a_broken_newest_model_falls_back_with_a_warning(monkeypatch, capsys, tmp_path, kind):
    if kind == "card":
        models = _models(tmp_path, GOOD.read_bytes(), card="{oops")
        # a broken card orders by file time: make the broken model the newest
        os.utime(models / "escalation-9.9-0123456789.skops", (4_000_000_000, 4_000_000_000))
    else:
        models = _models(tmp_path, _broken(kind))
    _env(monkeypatch, models_dir=models)
    assert main(["classify", "Troops withdrew from the border."]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Error:" not in captured.err
    assert "warning: skipped a broken model" in captured.err
    assert "escalation-9.9-0123456789" in captured.err and f"using {GOOD.name}" in captured.err
    good_version = GOOD.stem.removeprefix("escalation-")
    assert json.loads(captured.out)["model_version"] == good_version


# --- mail settings ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["desk@example.org\r\nBcc: all@example.org", "a@b.org\n"])
def test_a_line_break_in_alert_from(monkeypatch, capsys, tmp_path, value):
    _env(monkeypatch, alert_from=value, database_url=f"sqlite:///{tmp_path / 'e.db'}")
    assert_one_error(capsys, ["alerts", "send"], "ESCMON_ALERT_FROM", "line break")


# --- the CLI stays light ----------------------------------------------------------------

HEAVY = {
    "sqlalchemy",
    "sklearn",
    "numpy",
    "scipy",
    "feedparser",
    "httpx",
    "matplotlib",
    "skops",
    "alembic",
    "pydantic",
    "pydantic_settings",
}


def _heavy_modules(argv: list[str], env: dict[str, str]) -> list[str]:
    code = (
        "import json, sys; from pipeline.cli import main; main(sys.argv[1:]); "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


# typer (0.29) checks every non-flag option's value with a pydantic TypeAdapter, so a
# command with options imports pydantic itself; the settings (pydantic_settings) are avoided.
TYPER_OPTIONS = ["pydantic"]


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["--help"], []),
        (["feeds", "list"], TYPER_OPTIONS),
        (["feeds", "list", "--format", "table"], TYPER_OPTIONS),
        (["run", "--help"], TYPER_OPTIONS),
    ],
    ids=lambda value: " ".join(value) if value and value[0] != "pydantic" else "",
)
def test_help_and_feeds_list_import_nothing_heavy(argv, allowed):
    env = {"ESCMON_FEEDS_FILE": str(SEEDS / "feeds.toml")}
    assert _heavy_modules(argv, env) == allowed


def test_the_light_feeds_file_lookup_agrees_with_the_settings(monkeypatch, tmp_path):
    from pipeline.cli import _feeds_file
    from pipeline.config import Settings

    assert _feeds_file() == Settings().feeds_file  # the default
    (tmp_path / "escmon.toml").write_text('feeds_file = "from/toml.toml"\n')
    assert _feeds_file() == Settings().feeds_file == Path("from/toml.toml")
    (tmp_path / "other.toml").write_text('feeds_file = "from/other.toml"\n')
    monkeypatch.setenv("ESCMON_CONFIG", str(tmp_path / "other.toml"))
    assert _feeds_file() == Settings().feeds_file == Path("from/other.toml")
    monkeypatch.setenv("escmon_feeds_file", "from/env.toml")
    assert _feeds_file() == Settings().feeds_file == Path("from/env.toml")
