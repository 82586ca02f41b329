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

import json
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
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import EscmonError
from pipeline.tables import Base

BATCH_ROWS = 5000


class StoreError(EscmonError, RuntimeError):
    """The database is unreachable, unmigrated or otherwise unusable."""


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder, WAL and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


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
        raise StoreError(
            f"cannot open database {engine.url.render_as_string(hide_password=True)}: "
            f"{first_line(exc)}"
        ) from exc
    if current != head_revision(url):
        raise StoreError(
            f"database {engine.url.render_as_string(hide_password=True)} is at revision "
            f"{current or 'none'}, not the latest; run `escmon db upgrade`"
        )


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type name when the message is empty)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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
) -> list[Any]:
    """Read, work on and write batches until ``read`` returns an empty one; ``write``'s
    results, in order.

    ``read(after_id)`` returns the next batch of rows whose first field is an id, in id
    order (the first call gets 0); ``work(batch)`` computes what ``write`` stores. Reading
    the next batch and writing the last one run :func:`beside_compute` the work. Each
    write is its own transaction, so what was written before an error stays; at most one
    write is in flight. An error in a write surfaces at the latest with the next batch's,
    and one that coincides with another error is noted on it. ``progress.advance(n)``, if
    given, hears of each batch once its work is done.
    """
    results: list[Any] = []
    with beside_compute(engine) as io:
        upcoming, written = io.submit(read, 0), None
        try:
            while batch := upcoming.result():
                upcoming = io.submit(read, batch[-1][0])
                done = work(batch)
                if written is not None:
                    pending, written = written, None
                    results.append(pending.result())
                written = io.submit(write, done)
                if progress is not None:
                    progress.advance(len(batch))
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


# --- bulk writes --------------------------------------------------------------


def _insert_for(session: Session, table: Any) -> Any:
    dialect = _dialect_name(session)
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise _unsupported(dialect)


def _unsupported(dialect: str) -> StoreError:
    return StoreError(f"unsupported database dialect {dialect!r}; use SQLite or PostgreSQL")


def _check_columns(table: Any, names: Iterable[str]) -> None:
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
