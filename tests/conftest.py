"""Shared fixtures: migrated stores on a real SQLite file and the real PostgreSQL.

PostgreSQL tests need ``ESCMON_TEST_POSTGRES_URL``; each test gets its own
schema, dropped afterwards. Without the variable they skip with a reason,
except under ``CI=true``, where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipeline import store
from tests.dags.airflow_env import use_test_airflow_home

# Airflow reads AIRFLOW_HOME once, at its first import: give the session a throwaway home
# (never ~/airflow) before any test or tests/dags imports airflow.
use_test_airflow_home()

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
POSTGRES_ENV = "ESCMON_TEST_POSTGRES_URL"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need a trained model fixture are slow: `make test-fast` leaves them out."""
    for item in items:
        if {"trained", "retrained"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# Airflow is an optional extra: without it the DAG tests are not collected.
collect_ignore = [] if importlib.util.find_spec("airflow") else ["dags"]

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def postgres_url_or_skip() -> str:
    """The test server's URL; skip (or fail under CI) when it is not configured or down."""
    url = os.environ.get(POSTGRES_ENV)
    reason = None
    if not url:
        reason = f"PostgreSQL tests need {POSTGRES_ENV}, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test"
    else:
        try:
            engine = create_engine(url)
            with engine.connect():
                pass
            engine.dispose()
        except Exception as exc:
            reason = f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {exc}"
    if reason:
        if in_ci():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return url


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections use a fresh schema of the test server, dropped on exit."""
    base = postgres_url_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of ``backend`` (``sqlite`` or ``postgres``), as a URL."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'escmon.db'}"
    else:
        with postgres_schema_url() as url:
            yield url


@pytest.fixture(autouse=True)
def _data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's own data folder (ESCMON_DATA_DIR): models a test promotes or a feed list
    it edits never land in the checkout's var/, nor reach another test."""
    monkeypatch.setenv("ESCMON_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(autouse=True)
def _pipeline_logger() -> Iterator[None]:
    """The CLI sets up the ``pipeline`` logger (ESCMON_LOG_LEVEL); each test starts from
    the logger as it was, so no test sees another's handler or level."""
    logger = logging.getLogger("pipeline")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty store on SQLite and on PostgreSQL (one test run each)."""
    with database_url(request.param, tmp_path) as url:
        store.upgrade(url)
        yield url


@pytest.fixture
def engine(db_url: str):
    engine = store.make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def site_server():
    """A real HTTP server on 127.0.0.1 (see :class:`tests.http_site.Site`), one per module."""
    from tests.http_site import Site

    site = Site()
    site.server.start()
    yield site
    site.server.stop()


@pytest.fixture
def site(site_server):
    """The module's HTTP server with no routes and an empty request log."""
    site_server.reset()
    return site_server


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}")
    return SHARED


@pytest.fixture
def settings(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch):
    """Settings for a run against the ``db_url`` store, with the project's seeds and models."""
    from pipeline.config import Settings

    monkeypatch.chdir(tmp_path)
    return Settings(
        database_url=db_url,
        seeds_dir=REPO / "seeds",
        models_dir=REPO / "models",
        feeds_file=tmp_path / "feeds.toml",
        offline=True,
        # The fast models alone; the second opinion has tests of its own (test_encoder,
        # test_classify, test_multilingual), each sentence it embeds costs ~30 ms.
        second_opinion=False,
    )
