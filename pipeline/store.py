"""Engine, sessions, migrations and the bulk writes every stage uses.

Writes go through :func:`insert_ignore` and :func:`upsert`: one multi-row
statement per batch (SQLAlchemy's insertmanyvalues), conflict handling in the
database, so reruns add nothing and there are no per-row round trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, inspect, select
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
            f"{_first_line(exc)}"
        ) from exc
    if current != head_revision(url):
        raise StoreError(
            f"database {engine.url.render_as_string(hide_password=True)} is at revision "
            f"{current or 'none'}, not the latest; run `escmon db upgrade`"
        )


def _first_line(exc: BaseException) -> str:
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


def insert_ignore(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    *,
    returning: str | None = "id",
) -> list[Any]:
    """Insert ``rows``, skipping any that collide with a unique key.

    Returns the ``returning`` column of the rows actually inserted (in no
    promised order), so callers can count and link what is new.
    """
    if not rows:
        return []
    table = model.__table__
    inserted: list[Any] = []
    for batch in _batches(rows):
        statement = _insert_for(session, table).on_conflict_do_nothing()
        if returning is None:
            session.execute(statement, batch)
            continue
        statement = statement.returning(table.c[returning])
        result = session.execute(statement, batch)
        inserted.extend(result.scalars().all())
    return inserted


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
    for batch in _batches(rows):
        statement = _insert_for(session, table)
        statement = statement.on_conflict_do_update(
            index_elements=list(key),
            set_={column: statement.excluded[column] for column in columns},
        )
        session.execute(statement, batch)
    return len(rows)


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

