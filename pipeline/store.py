"""Engine, sessions, migrations and the bulk writes every stage uses.

Writes go through :func:`insert_ignore`, :func:`insert_columns` and :func:`upsert`:
a few statements per batch, conflict handling in the database, so reruns add nothing
and there are no per-row round trips. On PostgreSQL each batch is one
``INSERT ... SELECT FROM unnest(...)`` with an array parameter per column. On SQLite,
inserts that return no ids run as multi-row ``INSERT ... VALUES`` statements through the
driver, a column at a time through each type's bind processor; inserts returning ids and
upserts use SQLAlchemy's own multi-row statements.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from itertools import chain, repeat
from pathlib import Path
from typing import Any, cast, overload

from sqlalchemy import (
    JSON,
    Boolean,
    Engine,
    Float,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import EscmonError
from pipeline.tables import Base

log = logging.getLogger(__name__)

BATCH_ROWS = 5000


class StoreError(EscmonError, RuntimeError):
    """The database is unreachable, unmigrated or otherwise unusable."""


SETTING = "ESCMON_DATABASE_URL"
URL_EXAMPLES = "sqlite:///var/escmon.db or postgresql+psycopg://user@host/escmon"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder, WAL and foreign keys.

    Raises :class:`StoreError` naming ``ESCMON_DATABASE_URL`` for a URL that does not
    parse, a database other than SQLite or PostgreSQL, a driver that is not installed, or a
    SQLite folder that cannot be created.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # ArgumentError, or ValueError for a bad port
        raise StoreError(
            f"{SETTING}: cannot parse {url!r} as a database URL ({first_line(exc)}); "
            f"use e.g. {URL_EXAMPLES}"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"{SETTING}: unsupported database {backend!r} in "
            f"{render_url(parsed)}; use SQLite or PostgreSQL, "
            f"e.g. {URL_EXAMPLES}"
        )
    if backend == "sqlite":
        file = sqlite_file(parsed)
        folder = file.parent if file else None
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{SETTING}: cannot create the folder {folder} for the SQLite database "
                    f"({exc.strerror or first_line(exc)}); create it writable for this user "
                    f"or point {SETTING} elsewhere"
                ) from None
        engine = _create_engine(parsed, url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return _create_engine(parsed, url, pool_pre_ping=True)


def sqlite_file(parsed: URL) -> Path | None:
    """The file of a SQLite URL (an SQLite ``file:`` URI with ``?uri=true`` included);
    None for in-memory SQLite and other databases."""
    database = parsed.database or ""
    in_memory = str(parsed.query.get("mode", "")).lower() == "memory" or "mode=memory" in database
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or in_memory:
        return None
    if str(parsed.query.get("uri", "")).lower() in ("true", "1") and database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


def _create_engine(parsed: Any, url: str, **kwargs: Any) -> Engine:
    try:
        return create_engine(url, **kwargs)
    except (ImportError, NoSuchModuleError) as exc:  # e.g. postgresql+psycopg2 not installed
        raise StoreError(
            f"{SETTING}: the database driver {parsed.get_driver_name()!r} of "
            f"{render_url(parsed)} is not installed "
            f"({first_line(exc)}); use e.g. {URL_EXAMPLES}"
        ) from None
    except ArgumentError as exc:
        raise StoreError(f"{SETTING}: {render_url(parsed)}: {first_line(exc)}") from None


# What a database error's text says (fnmatch patterns, lower case) -> what to tell the user;
# the first match wins.
_DB_PROBLEMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("attempt to write a readonly database", "readonly database"),
        "the database is read-only; make the file and its folder writable for this user, "
        "or point {setting} at a writable database",
    ),
    (
        ("unable to open database file",),
        "cannot open the SQLite file; check that its folder exists and is writable for this "
        "user, or point {setting} elsewhere",
    ),
    (
        ("file is not a database", "database disk image is malformed"),
        "the file is not a usable SQLite database; restore it from a backup or point {setting} "
        "at another file",
    ),
    (
        ("database or disk is full", "no space left"),
        "the disk is full; free some space and rerun",
    ),
    (
        ('database "*" does not exist',),
        "the database does not exist; create it (e.g. `createdb NAME`) and run "
        "`escmon db upgrade`, or correct the database name in {setting}",
    ),
    (
        (
            "password authentication failed",
            "no password supplied",
            "authentication failed",
            'role "*" does not exist',
        ),
        "the server refused the user or password; correct them in {setting}",
    ),
    (
        (
            "server closed the connection",
            "terminating connection",
            "connection is closed",
            "connection is lost",
            "consuming input failed",
            "sending query failed",
            "connection already closed",
            "ssl syscall error",
        ),
        "the connection to the database server was lost; check the server, then rerun "
        "(what was committed is kept)",
    ),
    (
        (
            "connection refused",
            "could not connect",
            "connection failed",
            "timeout expired",
            "could not translate host name",
            "name or service not known",
            "no route to host",
        ),
        "cannot reach the database server; start it, or correct the host and port in {setting}",
    ),
)


def describe_database_error(url: str | URL, exc: BaseException) -> str:
    """One line naming the database (password hidden), the setting, the cause and the fix."""
    import fnmatch

    orig = getattr(exc, "orig", None)
    source = orig if orig is not None else exc
    cause = first_line(source)
    lowered = str(source).lower()
    where = f"database {render_url(url)} ({SETTING})"
    for needles, advice in _DB_PROBLEMS:
        if any(fnmatch.fnmatchcase(lowered, f"*{needle}*") for needle in needles):
            return f"{where}: {cause}; {advice.format(setting=SETTING)}"
    return f"{where}: {cause}"


def database_error(url: str | URL, exc: BaseException) -> StoreError:
    """:func:`describe_database_error` as a :class:`StoreError`."""
    return StoreError(describe_database_error(url, exc))


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from the database or its driver (not from the project's code)."""
    import sqlite3

    return isinstance(exc, DBAPIError | sqlite3.Error) or type(exc).__module__.startswith("psycopg")


def render_url(url: str | URL) -> str:
    """The URL to show a person: the password masked."""
    if isinstance(url, str):
        try:
            parsed = make_url(url)
        except Exception:
            return url
    else:
        parsed = url
    return str(parsed.render_as_string(hide_password=True))


@contextmanager
def database_errors(url: str | URL) -> Iterator[None]:
    """Turn errors of the database (or its driver, or Alembic) into :class:`StoreError`."""
    try:
        yield
    except EscmonError:
        raise
    except Exception as exc:
        if is_database_error(exc):
            raise database_error(url, exc) from exc
        if type(exc).__module__.startswith("alembic"):
            raise StoreError(f"database {render_url(url)} ({SETTING}): {first_line(exc)}") from exc
        raise


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# --- migrations -------------------------------------------------------------


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("pipeline") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    make_engine(url).dispose()  # creates the SQLite folder if needed
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def check_schema(engine: Engine) -> None:
    """Raise :class:`StoreError` with the fix when the database is not at head."""
    url = engine.url.render_as_string(hide_password=False)
    try:
        current = current_revision(engine)
    except Exception as exc:  # connection refused, bad credentials, ...
        raise StoreError(f"cannot open {describe_database_error(engine.url, exc)}") from exc
    if current != head_revision(url):
        raise StoreError(
            f"database {render_url(engine.url)} is at revision "
            f"{current or 'none'}, not the latest; run `escmon db upgrade`"
        )


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type name when the message is empty)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --- one run at a time ----------------------------------------------------------

RUN_LOCK_SETTING = "ESCMON_RUN_LOCK_TIMEOUT"
_RUN_LOCK_NAME = "escmon:run-lock"
_POLL_FIRST, _POLL_MAX = 0.05, 1.0  # lock file polling: 50 ms, doubling up to 1 s
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout expires


class RunLockTimeout(StoreError):
    """Another run held the store's run lock for longer than this run would wait."""


class _LockBackend:
    """How one kind of store is locked; the base class locks nothing (in-memory SQLite)."""

    where = "no lock (in-memory database)"

    def try_acquire(self, owner: str) -> bool:
        return True

    def wait(self, owner: str, seconds: float) -> bool:
        return True

    def holder(self) -> str | None:
        return None

    def describe(self, owner: str) -> None:
        pass

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class _FileLock(_LockBackend):
    """SQLite: ``flock`` on ``<database>.lock``, which also holds the holder's description.

    The kernel drops the lock when its holder exits, however it exits, so a killed run never
    leaves a stale lock. Separate opens conflict, so threads of one process exclude each
    other too.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"lock file {path}"
        self._fd: int | None = None
        self._held = False
        self._since = ""

    def try_acquire(self, owner: str) -> bool:
        import fcntl

        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._held = True
        self._since = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
        self.describe(owner)
        return True

    def wait(self, owner: str, seconds: float) -> bool:
        """Poll (sleeping in between, 50 ms growing to 1 s) until acquired or ``seconds``."""
        deadline = time.monotonic() + seconds
        delay = _POLL_FIRST
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(delay, remaining))
            delay = min(2 * delay, _POLL_MAX)
            if self.try_acquire(owner):
                return True
        return False

    def holder(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip() or None
        except OSError:
            return None

    def describe(self, owner: str) -> None:
        if self._fd is not None and self._held:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{owner}, since {self._since}\n".encode(), 0)

    def release(self) -> None:
        import fcntl

        if self._fd is not None and self._held:
            self._held = False
            os.ftruncate(self._fd, 0)  # before unlocking: a waiter never reads a stale holder
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing also drops the flock
            self._fd = None


class _AdvisoryLock(_LockBackend):
    """PostgreSQL: a session-level advisory lock on a dedicated connection.

    The key is derived from a fixed name and the store's schema (advisory locks are per
    database), so stores in different schemas of one database do not exclude each other.
    The holder shows itself to waiters through its connection's ``application_name``.
    The server drops the lock when the holder's connection ends.
    """

    def __init__(self, engine: Engine) -> None:
        self._connection: Connection = engine.connect().execution_options(
            isolation_level="AUTOCOMMIT"
        )
        self._held = False
        try:
            database, schema = self._connection.execute(
                text("SELECT current_database(), current_schema()")
            ).one()
        except BaseException:
            self._connection.close()
            raise
        digest = hashlib.sha256(f"{_RUN_LOCK_NAME}:{schema or ''}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self.where = f"advisory lock {self.key} in database {database!r}, schema {schema!r}"

    def _scalar(self, sql: str, **params: Any) -> Any:
        return self._connection.execute(text(sql), params).scalar()

    def try_acquire(self, owner: str) -> bool:
        self.describe(owner, force=True)  # named before holding: waiters always see who
        self._held = bool(self._scalar("SELECT pg_try_advisory_lock(:key)", key=self.key))
        return self._held

    def wait(self, owner: str, seconds: float) -> bool:
        """Block in the server (no polling) until the lock is free or ``seconds`` pass."""
        milliseconds = max(1, math.ceil(seconds * 1000))
        self._connection.exec_driver_sql(f"SET lock_timeout = {milliseconds}")
        try:
            self._scalar("SELECT pg_advisory_lock(:key)", key=self.key)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                return False
            raise
        finally:
            self._connection.exec_driver_sql("RESET lock_timeout")
        self._held = True
        return True

    def holder(self) -> str | None:
        row = self._connection.execute(
            text(
                "SELECT a.pid, a.application_name, host(a.client_addr) FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND l.classid::text::bigint = :high AND l.objid::text::bigint = :low "
                "AND a.pid <> pg_backend_pid()"
            ),
            {"high": (self.key >> 32) & 0xFFFFFFFF, "low": self.key & 0xFFFFFFFF},
        ).first()
        if row is None:
            return None
        pid, name, address = row
        name = (name or "").strip() or "a session"  # application_name: its first 63 bytes
        return f"{name} (server pid {pid}, from {address or 'a local socket'})"

    def describe(self, owner: str, *, force: bool = False) -> None:
        if self._held or force:  # PostgreSQL keeps the first 63 bytes
            self._scalar("SELECT set_config('application_name', :name, false)", name=owner)

    def release(self) -> None:
        if self._held:
            self._held = False
            try:
                unlocked = self._scalar("SELECT pg_advisory_unlock(:key)", key=self.key)
            except Exception:
                self._connection.invalidate()  # never pool a session that may hold the lock
                raise
            if not unlocked:
                log.warning("run lock %s was no longer held at release", self.key)

    def close(self) -> None:
        try:
            self._connection.exec_driver_sql("RESET application_name")
        except Exception:  # a broken connection: the server has dropped the lock with it
            self._connection.invalidate()
        self._connection.close()


def _lock_backend(engine: Engine) -> _LockBackend:
    url = engine.url
    if url.get_backend_name() == "postgresql":
        try:
            return _AdvisoryLock(engine)
        except DBAPIError as exc:
            raise StoreError(
                f"cannot open database {render_url(url)} to take the run lock: {first_line(exc)}"
            ) from exc
    if url.get_backend_name() == "sqlite":
        path = run_lock_path(url)
        # An in-memory database is private to this process: nothing to exclude.
        return _FileLock(path) if path is not None else _LockBackend()
    raise _unsupported(url.get_backend_name())


class RunLock:
    """The store's run lock, held; see :func:`run_lock`."""

    def __init__(self, backend: _LockBackend) -> None:
        self._backend = backend
        self.where = backend.where

    def describe(self, owner: str) -> None:
        """Update what other runs are told about the holder (for example the current stage)."""
        self._backend.describe(owner)


def run_lock_path(url: str | URL) -> Path | None:
    """The run lock file of a SQLite file store (``var/escmon.db`` -> ``var/escmon.db.lock``);
    None for in-memory SQLite and other databases."""
    file = sqlite_file(make_url(url))
    return Path(f"{file}.lock") if file else None


@contextmanager
def run_lock(
    engine: Engine,
    *,
    owner: str,
    timeout: float,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[RunLock]:
    """Hold the store's run lock for the block, so that one run at a time works on a store.

    PostgreSQL: a session-level advisory lock on a connection of its own. SQLite: ``flock``
    on the lock file beside the database file (in-memory databases need none). ``owner``
    tells waiting runs who holds it. When another run holds it, ``on_wait(holder)`` is called
    and this run waits up to ``timeout`` seconds, then raises :class:`RunLockTimeout`, which
    names the holder and the setting. Nothing is written to the store while waiting.
    """
    backend = _lock_backend(engine)
    try:
        if not backend.try_acquire(owner):
            holder = backend.holder() or "another run"
            log.warning(
                "store in use by %s; waiting up to %g s (%s)", holder, timeout, RUN_LOCK_SETTING
            )
            if on_wait is not None:
                on_wait(holder)
            if timeout <= 0 or not backend.wait(owner, timeout):
                raise RunLockTimeout(_timeout_message(engine, backend, timeout))
        try:
            yield RunLock(backend)
        finally:
            try:
                backend.release()
            except Exception as exc:  # never mask the block's own error; closing frees it
                log.warning("could not release the run lock (%s): %s", backend.where, exc)
    finally:
        try:
            backend.close()
        except Exception as exc:
            log.warning("could not close the run lock (%s): %s", backend.where, exc)


def _timeout_message(engine: Engine, backend: _LockBackend, timeout: float) -> str:
    holder = backend.holder() or "another run (it has just finished or not named itself yet)"
    waited = f"waited {timeout:g} s" if timeout > 0 else f"not waiting: {RUN_LOCK_SETTING}=0"
    return (
        f"store {render_url(engine.url)} is in use by another run: "
        f"{holder} ({waited}; {backend.where}). Let that run finish and run again, or set "
        f"{RUN_LOCK_SETTING} to the seconds to wait (now {timeout:g})"
    )


# --- database work beside computing -------------------------------------------


class _Inline:
    """An executor that runs each call at once, in the caller's thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # delivered by .result(), as a thread pool would
            future.set_exception(exc)
        return future


@contextmanager
def beside_compute(engine: Engine) -> Iterator[Any]:
    """An executor (``submit(fn, *args)`` -> future) for database calls that may overlap
    the caller's computing: one background thread on PostgreSQL, the caller's own thread
    on SQLite.

    The PostgreSQL server works in its own process and psycopg releases the GIL while it
    waits, so a stage's reads and writes cost it almost nothing while it computes. SQLite
    works inside this process, releasing and re-taking the GIL at every row, which a
    computing thread would hold for up to a switch interval (5 ms) each time. On exit the
    calls already submitted are finished.
    """
    if engine.dialect.name != "postgresql":
        yield _Inline()
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="escmon-db") as pool:
        yield pool


def run_batches(
    engine: Engine,
    read: Callable[[int], Sequence[Any]],
    work: Callable[[Sequence[Any]], Any],
    write: Callable[[Any], Any],
    *,
    progress: Any = None,
    workers: int = 1,
) -> list[Any]:
    """Read, work on and write batches until ``read`` returns an empty one; ``write``'s
    results, in order.

    ``read(after_id)`` returns the next batch of rows whose first field is an id, in id
    order (the first call gets 0); ``work(batch)`` computes what ``write`` stores. Each
    write is its own transaction, so what was written before an error stays.
    ``progress.advance(n)``, if given, hears of each batch once its work is done.

    With ``workers`` > 1 and more than one batch, the first batch is worked here (loading
    whatever ``work`` loads lazily), then ``work`` runs in that many forked processes
    (:mod:`pipeline.parallel`), a few batches ahead, while this process reads and writes in
    batch order. Otherwise reading the next batch and writing the last one run
    :func:`beside_compute` the work, at most one write in flight; an error in a write
    surfaces at the latest with the next batch's, and one that coincides with another error
    is noted on it.
    """
    if workers <= 1:
        return _batches_here(engine, read, work, write, progress)
    first = read(0)
    if not first:
        return []
    results = [write(work(first))]
    _advanced(progress, len(first))
    after = first[-1][0]
    upcoming = read(after)
    if not upcoming:
        return results
    from pipeline.parallel import forked_pool

    with forked_pool(work, workers) as pool:
        if pool is not None:
            return results + _batches_in_pool(pool, read, write, upcoming, workers + 1, progress)
    return results + _batches_here(engine, read, work, write, progress, after=after)


def _advanced(progress: Any, n: int) -> None:
    if progress is not None:
        progress.advance(n)


def _batches_here(
    engine: Engine,
    read: Callable[[int], Sequence[Any]],
    work: Callable[[Sequence[Any]], Any],
    write: Callable[[Any], Any],
    progress: Any,
    after: int = 0,
) -> list[Any]:
    """:func:`run_batches` computing in this process, from the batch after ``after``."""
    results: list[Any] = []
    with beside_compute(engine) as io:
        upcoming, written = io.submit(read, after), None
        try:
            while batch := upcoming.result():
                upcoming = io.submit(read, batch[-1][0])
                done = work(batch)
                if written is not None:
                    pending, written = written, None
                    results.append(pending.result())
                written = io.submit(write, done)
                _advanced(progress, len(batch))
            if written is not None:
                pending, written = written, None
                results.append(pending.result())
        except BaseException as exc:
            upcoming.cancel()
            failed = written.exception() if written is not None else None
            if failed is not None:
                exc.add_note(f"an earlier batch's write failed too: {first_line(failed)}")
            raise
    return results


def _batches_in_pool(
    pool: Any,
    read: Callable[[int], Sequence[Any]],
    write: Callable[[Any], Any],
    batch: Sequence[Any],
    depth: int,
    progress: Any,
) -> list[Any]:
    """:func:`run_batches` with the work in ``pool``'s processes, ``depth`` batches in
    flight, from ``batch`` on; results are written here in batch order."""
    from collections import deque

    from pipeline.parallel import submit_work

    results: list[Any] = []
    in_flight: deque[tuple[Future, int]] = deque()
    while batch or in_flight:  # on an error, the pool's shutdown cancels what is queued
        while batch and len(in_flight) < depth:
            in_flight.append((submit_work(pool, batch), len(batch)))
            batch = read(batch[-1][0])
        future, size = in_flight.popleft()
        done = future.result()
        _advanced(progress, size)
        results.append(write(done))
    return results


# --- bulk writes --------------------------------------------------------------


def _insert_for(session: Session, table: Table) -> Any:
    dialect = _dialect_name(session)
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise _unsupported(dialect)


def _unsupported(dialect: str) -> StoreError:
    return StoreError(f"unsupported database dialect {dialect!r}; use SQLite or PostgreSQL")


def _check_columns(table: Table, names: Iterable[str]) -> None:
    unknown = set(names) - set(table.c.keys())
    if unknown:
        raise StoreError(f"{table.name}: no such columns {sorted(unknown)}")


def _batches(rows: Sequence[dict[str, Any]], size: int = BATCH_ROWS) -> Iterable[list[dict]]:
    for start in range(0, len(rows), size):
        yield list(rows[start : start + size])


@overload
def insert_ignore(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], *, returning: str = ...
) -> list[Any]: ...


@overload
def insert_ignore(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], *, returning: None
) -> int: ...


def insert_ignore(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    *,
    returning: str | None = "id",
) -> list[Any] | int:
    """Insert ``rows``, skipping any that collide with a unique key.

    Returns the ``returning`` column of the rows actually inserted (in no
    promised order), so callers can link what is new; with ``returning=None``,
    only how many rows were inserted (cheaper: no result rows travel back).
    """
    table = cast(Table, model.__table__)
    inserted: list[Any] = []
    count = 0
    params: Any
    dialect = _dialect_name(session) if rows else ""
    for batch in _batches(rows):
        if dialect == "postgresql" or returning is None:
            columns = _column_lists(table, batch)
            if returning is None:
                count += _insert_columns(session, table, columns, len(batch))
                continue
            statement, params = _unnest_insert(
                session, table, columns, len(batch), returning=returning
            )
        else:  # SQLite with RETURNING: SQLAlchemy's multi-row VALUES
            statement = _insert_for(session, table).on_conflict_do_nothing()
            statement = statement.returning(table.c[returning])
            params = batch
        inserted.extend(session.execute(statement, params).scalars().all())
    return count if returning is None else inserted


def insert_columns(session: Session, model: type[Base], columns: dict[str, Any]) -> int:
    """Insert rows given column by column, skipping any that collide with a unique key.

    ``columns`` maps a column name to a list, tuple or 1-D NumPy array of values, one per
    row (all of the same length), or to any other value, which every row shares (so a JSON
    list meant for every row must be given per row). At least one column must be per row.
    For many narrow rows, such as predictions, this skips building a dict per row. Returns
    how many rows were inserted.
    """
    table = cast(Table, model.__table__)
    _check_columns(table, columns)
    per_row = {
        name: v.tolist() if getattr(v, "ndim", 0) == 1 else list(v)
        for name, v in columns.items()
        if _one_per_row(v)
    }
    if columns and not per_row:
        raise StoreError(
            f"{table.name}: no column has one value per row; give at least one as a list"
        )
    lengths = {len(v) for v in per_row.values()}
    if len(lengths) > 1:
        raise StoreError(f"{table.name}: columns of different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    filled = {
        **_defaults(table),
        **{name: per_row[name] if name in per_row else _Shared(v) for name, v in columns.items()},
    }
    count = 0
    for start in range(0, n, BATCH_ROWS):
        batch = {
            name: v[start : start + BATCH_ROWS] if isinstance(v, list) else v
            for name, v in filled.items()
        }
        count += _insert_columns(session, table, batch, min(BATCH_ROWS, n - start))
    return count


def _one_per_row(value: Any) -> bool:
    return isinstance(value, list | tuple) or getattr(value, "ndim", 0) == 1  # NumPy 1-D


@dataclass(frozen=True)
class _Shared:
    """One value for every row of a batch, in a column mapping (where a list is per row)."""

    value: Any


def _insert_columns(session: Session, table: Any, columns: dict[str, Any], n: int) -> int:
    dialect = _dialect_name(session)
    if dialect == "postgresql":
        statement, params = _unnest_insert(session, table, columns, n)
        return session.execute(statement, params).rowcount  # type: ignore[attr-defined]
    if dialect == "sqlite":
        return _sqlite_insert(session, table, columns, n)
    raise _unsupported(dialect)


def upsert(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] | None = None,
) -> int:
    """Insert ``rows`` or update the ``update`` columns of the row with the same ``key``."""
    if not rows:
        return 0
    table = cast(Table, model.__table__)
    columns = list(update) if update is not None else [c for c in rows[0] if c not in key]
    postgres = _dialect_name(session) == "postgresql"
    for batch in _batches(rows):
        if postgres:
            statement, params = _unnest_insert(
                session, table, _column_lists(table, batch), len(batch), key=key, update=columns
            )
            session.execute(statement, params)
            continue
        statement = _insert_for(session, table)
        statement = statement.on_conflict_do_update(
            index_elements=list(key),
            set_={column: statement.excluded[column] for column in columns},
        )
        session.execute(statement, batch)
    return len(rows)


def _dialect_name(session: Session) -> str:
    return session.get_bind().dialect.name


def _unnest_insert(
    session: Session,
    table: Any,
    columns: dict[str, Any],
    n: int,
    *,
    returning: str | None = None,
    key: Sequence[str] = (),
    update: Sequence[str] = (),
) -> tuple[Any, dict[str, list[str | None]]]:
    """PostgreSQL: one ``INSERT ... SELECT FROM unnest(<one text[] per column>)`` per batch.

    A short statement with one array parameter per column, instead of one placeholder per
    value: psycopg caches the parsed statement, and the server gets a few large parameters.
    Values travel as text and are cast to each column's type in the SELECT.
    """
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    params: dict[str, list[str | None]] = {}
    arrays, selects = [], []
    for i, (name, values) in enumerate(columns.items()):
        column = table.c[name]
        params[f"p{i}"] = _as_text(column, values, dialect, n)
        arrays.append(f"CAST(:p{i} AS TEXT[])")
        selects.append(f"CAST(u.c{i} AS {column.type.compile(dialect=dialect)})")
    names = ", ".join(quote(name) for name in columns)
    aliases = ", ".join(f"c{i}" for i in range(len(columns)))
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) "
        f"SELECT {', '.join(selects)} FROM unnest({', '.join(arrays)}) AS u({aliases}) "
    )
    if key:
        targets = ", ".join(quote(k) for k in key)
        sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update)
        sql += f"ON CONFLICT ({targets}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING")
    else:
        sql += "ON CONFLICT DO NOTHING"
    if returning is not None:
        sql += f" RETURNING {quote(table.c[returning].name)}"
    return text(sql), params


SQLITE_VARIABLES = 999  # the lowest limit on parameters per statement of any SQLite 3


def _sqlite_insert(session: Session, table: Any, columns: dict[str, Any], n: int) -> int:
    """SQLite without RETURNING: ``INSERT ... VALUES (...), (...), ... ON CONFLICT DO
    NOTHING`` with as many rows per statement as its parameter limit allows, each value
    through its column type's bind processor.

    SQLAlchemy's own executemany spends as long converting the rows as SQLite spends
    storing them; this does the same conversion a column at a time (once for a value
    every row shares). Multi-row statements take a third less time in SQLite than the
    driver's ``executemany`` of a one-row statement.
    """
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    values: list[Iterable[Any]] = []
    for name, column_values in columns.items():
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if isinstance(column_values, _Shared):
            value = column_values.value
            values.append(repeat(process(value) if process else value, n))
        else:
            values.append(column_values if process is None else map(process, column_values))
    rows = list(zip(*values, strict=True))
    head = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(name) for name in columns)}) VALUES "
    )
    one = f"({', '.join('?' for _ in columns)})"
    per_statement = max(1, SQLITE_VARIABLES // len(columns))
    if session.autoflush:
        session.flush()  # as session.execute would: pending ORM objects first
    connection = session.connection()
    inserted = 0
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = f"{head}{', '.join([one] * len(chunk))} ON CONFLICT DO NOTHING"
        params = tuple(chain.from_iterable(chunk))
        inserted += connection.exec_driver_sql(sql, params).rowcount
    return inserted


def _column_lists(table: Any, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``rows`` column by column: a list per column, in table order, plus the Python-side
    default of each column the rows lack, shared (rows written together share a default
    such as the insert time)."""
    present = {name for row in rows for name in row}
    _check_columns(table, present)
    defaults = _defaults(table)
    columns: dict[str, Any] = {}
    for column in table.c:
        name = column.name
        if name not in present:
            if name in defaults:
                columns[name] = defaults[name]
        elif name in defaults:
            default = defaults[name].value
            columns[name] = [row.get(name, default) for row in rows]
        else:
            columns[name] = [row.get(name) for row in rows]
    return columns


def _defaults(table: Any) -> dict[str, Any]:
    """The Python-side default of each column of ``table`` that has one, evaluated now."""
    out = {}
    for column in table.c:
        default = column.default
        if default is not None and (default.is_callable or default.is_scalar):
            out[column.name] = _Shared(default.arg(None) if default.is_callable else default.arg)
    return out


def _as_text(column: Any, values: Any, dialect: Any, n: int) -> list[str | None]:
    """A column's values (a list, or one value for every row) as text for PostgreSQL's input
    functions."""
    if isinstance(values, _Shared):
        return _as_text(column, [values.value], dialect, 1) * n
    if isinstance(column.type, JSON):
        dump = getattr(dialect, "_json_serializer", None) or json.dumps
        return [dump(v) for v in values]  # None is JSON null, as SQLAlchemy stores it
    if isinstance(column.type, Boolean):
        return [None if v is None else ("true" if v else "false") for v in values]
    if isinstance(column.type, Float):
        return [None if v is None else repr(float(v)) for v in values]
    return [v if v is None or isinstance(v, str) else str(v) for v in values]


def table_counts(engine: Engine) -> dict[str, int]:
    """Row count of every table of the store (for summaries and tests)."""
    counts: dict[str, int] = {}
    present = set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        for name, table in Base.metadata.tables.items():
            if name in present:
                query = select(func.count()).select_from(table)
                counts[name] = connection.execute(query).scalar_one()
    return counts
