"""Engine, sessions, migrations and the bulk writes every stage uses.

Writes go through :func:`insert_ignore` and :func:`upsert`: one statement per
batch, conflict handling in the database, so reruns add nothing and there are
no per-row round trips. SQLite uses SQLAlchemy's multi-row insert; PostgreSQL
one ``INSERT ... SELECT FROM unnest(...)`` with an array parameter per column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, overload

from sqlalchemy import (
    JSON,
    Boolean,
    Engine,
    Float,
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

from pipeline.tables import Base

BATCH_ROWS = 5000


class StoreError(RuntimeError):
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


# --- bulk writes --------------------------------------------------------------


def _insert_for(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database dialect {dialect!r}; use SQLite or PostgreSQL")


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
    table = model.__table__
    inserted: list[Any] = []
    count = 0
    postgres = bool(rows) and _dialect_name(session) == "postgresql"
    for batch in _batches(rows):
        if postgres:
            statement, params = _unnest_insert(session, table, batch, returning=returning)
        else:
            statement = _insert_for(session, table).on_conflict_do_nothing()
            if returning is not None:
                statement = statement.returning(table.c[returning])
            params = batch
        result = session.execute(statement, params)
        if returning is None:
            count += result.rowcount
        else:
            inserted.extend(result.scalars().all())
    return count if returning is None else inserted


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
    table = model.__table__
    columns = list(update) if update is not None else [c for c in rows[0] if c not in key]
    postgres = _dialect_name(session) == "postgresql"
    for batch in _batches(rows):
        if postgres:
            statement, params = _unnest_insert(session, table, batch, key=key, update=columns)
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
    batch: list[dict[str, Any]],
    *,
    returning: str | None = None,
    key: Sequence[str] = (),
    update: Sequence[str] = (),
) -> tuple[Any, dict[str, list[str | None]]]:
    """PostgreSQL: one ``INSERT ... SELECT FROM unnest(<one text[] per column>)`` per batch.

    A short statement with one array parameter per column, instead of one placeholder per
    value: psycopg caches the parsed statement, and the server gets a few large parameters.
    Values travel as text and are cast to each column's type in the SELECT. Columns with a
    Python-side default that a row lacks get it here, as SQLAlchemy would have given it.
    """
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    present = {name for row in batch for name in row}
    unknown = present - set(table.c.keys())
    if unknown:
        raise StoreError(f"{table.name}: no such columns {sorted(unknown)}")
    columns = [c for c in table.c if c.name in present or _python_default(c)]
    params: dict[str, list[str | None]] = {}
    arrays, selects = [], []
    for n, column in enumerate(columns):
        values = _column_values(column, batch, dialect)
        params[f"p{n}"] = values
        arrays.append(f"CAST(:p{n} AS TEXT[])")
        selects.append(f"CAST(u.c{n} AS {column.type.compile(dialect=dialect)})")
    names = ", ".join(quote(c.name) for c in columns)
    aliases = ", ".join(f"c{n}" for n in range(len(columns)))
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


def _python_default(column: Any) -> bool:
    default = column.default
    return default is not None and (default.is_callable or default.is_scalar)


def _column_values(column: Any, batch: list[dict[str, Any]], dialect: Any) -> list[str | None]:
    """The column's values of ``batch`` as text for PostgreSQL's input functions."""
    name = column.name
    default = column.default if _python_default(column) else None
    if default is not None:
        if default.is_callable:
            values = [row[name] if name in row else default.arg(None) for row in batch]
        else:
            values = [row.get(name, default.arg) for row in batch]
    else:
        values = [row.get(name) for row in batch]
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

