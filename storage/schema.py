"""The operational database's schema version: Alembic revisions under storage/migrations/.

`upgrade_database` is the one way a schema is made or changed (`pacs db upgrade`, `pacs up`,
the other commands, the tests). Two processes upgrading at once wait for each other: a file
lock beside a SQLite database, `pg_advisory_lock` on PostgreSQL. A database made by a release
before migrations (`create_all`, no `alembic_version` table) gets the tables and indexes it
lacks, is stamped at the baseline and upgraded like any other. Servers (the portal, the
pipeline's flows) call `check_schema` and refuse a database that is not at this release's head.
"""

from __future__ import annotations

import fcntl
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, MetaData, inspect, text
from sqlalchemy.orm import Session

from storage.migrations.baseline import BASELINE, STALE_INDEXES

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE_REVISION = "0001_baseline"
# Any number, the same in every process: the key of the PostgreSQL advisory lock.
POSTGRES_LOCK_KEY = 0x7061637300000001


class SchemaError(RuntimeError):
    """The database's schema cannot be used or upgraded as it is (one line, for the user)."""


@dataclass(frozen=True)
class SchemaState:
    current: tuple[str, ...]  # revisions stamped in the database (empty: none)
    heads: tuple[str, ...]  # this release's revisions
    legacy: bool  # made by `create_all` before migrations: tables but no alembic_version
    unknown: tuple[str, ...]  # stamped revisions this release does not know (a newer one's)

    @property
    def up_to_date(self) -> bool:
        return self.current == self.heads


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built here so that the migrations ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@functools.cache
def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revisions() -> tuple[str, ...]:
    return tuple(sorted(script_directory().get_heads()))


def read_schema_state(connection: Connection) -> SchemaState:
    current = tuple(sorted(MigrationContext.configure(connection).get_current_heads()))
    tables = set(inspect(connection).get_table_names())
    known = {revision.revision for revision in script_directory().walk_revisions()}
    return SchemaState(
        current=current,
        heads=head_revisions(),
        legacy=not current and bool(tables & set(BASELINE.tables)),
        unknown=tuple(revision for revision in current if revision not in known),
    )


def describe_database(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def check_schema(engine: Engine) -> None:
    """Raise SchemaError unless the database is at this release's head revision."""
    with engine.connect() as connection:
        state = read_schema_state(connection)
    if state.up_to_date:
        return
    where = describe_database(engine)
    if state.unknown:
        raise SchemaError(
            f"the database {where} was upgraded by a newer release (revision "
            f"{', '.join(state.unknown)}): run that release"
        )
    at = "made before migrations" if state.legacy else f"at {', '.join(state.current) or 'none'}"
    raise SchemaError(
        f"the database {where} is behind this release's schema ({at}, needs "
        f"{', '.join(state.heads)}): run `pacs db upgrade`"
    )


def upgrade_database(engine: Engine) -> tuple[SchemaState, SchemaState]:
    """Bring the database to this release's head; returns its state before and after."""
    with migration_lock(engine), engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch mode copies a table and drops the original: with foreign keys on, that
            # drop would cascade to the rows that reference it.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        before = read_schema_state(connection)
        if before.unknown:
            raise SchemaError(
                f"the database {describe_database(engine)} was upgraded by a newer release "
                f"(revision {', '.join(before.unknown)}): run that release"
            )
        config = alembic_config(connection)
        if before.legacy:
            complete_legacy_schema(connection)
            command.stamp(config, BASELINE_REVISION)
            connection.commit()
        command.upgrade(config, "heads")
        connection.commit()
        seed_database(connection)
        after = read_schema_state(connection)
        connection.rollback()
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        return before, after


def seed_database(connection: Connection) -> None:
    """What every database at this schema holds, made idempotently after each upgrade: the
    audit chain's head (chaining a trail written before links existed)."""
    from storage.audit_chain import start_audit_chain  # storage.database imports this module

    with Session(bind=connection) as session:
        start_audit_chain(session)
        session.commit()


def complete_legacy_schema(connection: Connection) -> None:
    """Give a `create_all` database what the baseline has and it lacks (tables, indexes);
    drop the indexes later releases removed. Rows are never touched."""
    inspector = inspect(connection)
    for table in BASELINE.sorted_tables:
        if not inspector.has_table(table.name):
            table.create(connection)
            continue
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        missing = [column.name for column in table.columns if column.name not in columns]
        if missing:
            raise SchemaError(
                f"table {table.name} has no column {', '.join(missing)}: this database was not "
                f"made by the release before migrations, and cannot be upgraded"
            )
        indexes = list_index_names(connection, table.name)
        for name in STALE_INDEXES.get(table.name, ()):
            if name in indexes:
                connection.execute(text(f'DROP INDEX "{name}"'))
        for index in table.indexes:
            if index.name not in indexes:
                index.create(connection)  # indexes for another dialect are skipped


def list_index_names(connection: Connection, table: str) -> set[str]:
    """Every index of `table` by name, expression indexes included (reflection skips those
    on SQLite), constraint-backed ones left out."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :table"
        rows = connection.execute(text(query + " AND sql IS NOT NULL"), {"table": table})
        return set(rows.scalars())
    if dialect == "postgresql":
        query = """
            SELECT i.relname FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname = :table AND t.relnamespace = current_schema()::regnamespace
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        """
        return set(connection.execute(text(query), {"table": table}).scalars())
    return {index["name"] for index in inspect(connection).get_indexes(table) if index["name"]}


def comparable_objects(metadata: MetaData, dialect: str) -> Callable[..., bool]:
    """Autogenerate's `include_object` for `metadata` on `dialect`: leave out its expression
    indexes, which SQLite's reflection cannot read back (`list_index_names` sees them by
    name), and the indexes of another backend alone (`ddl_if`)."""
    left_out = {
        index.name
        for table in metadata.tables.values()
        for index in table.indexes
        if not all(isinstance(part, Column) for part in index.expressions)
        or (index._ddl_if is not None and index._ddl_if.dialect not in (None, dialect))
    }

    def include(item: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        return not (kind == "index" and name in left_out)

    return include


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's migration lock: one upgrade at a time, the others wait."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as lock:
            lock = lock.execution_options(isolation_level="AUTOCOMMIT")
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": POSTGRES_LOCK_KEY})
            try:
                yield
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": POSTGRES_LOCK_KEY})
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    path = Path(f"{database}.migrate-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
