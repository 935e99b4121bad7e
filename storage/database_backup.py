"""Copies of a database that are one consistent snapshot while others write, and the rows'
fingerprint that proves a copy came back whole.

SQLite: the online backup API, in one step (one read transaction, so one snapshot under WAL).
PostgreSQL: `pg_dump -Fc` inside a snapshot exported by a REPEATABLE READ transaction, which
also counts and checksums the rows, so the manifest describes exactly what the dump holds.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

PG_TIMEOUT = 3600  # seconds a pg_dump or pg_restore may take


class DatabaseBackupError(RuntimeError):
    """A copy, dump or restore of a database failed; the message says why (one line)."""


@dataclass(frozen=True)
class TableSummary:
    rows: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "sha256": self.sha256}


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for a server database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise DatabaseBackupError(f"{url} is not a database file")
    return Path(parsed.database)


def copy_sqlite(source: Path, target: Path) -> None:
    """One consistent snapshot of `source` while others write, as a self-contained file."""
    if not source.is_file():
        raise DatabaseBackupError(f"no database at {source}")
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer)  # pages=-1: every page in one step, one read transaction
        writer.execute("PRAGMA journal_mode=DELETE")
    finally:
        writer.close()
        reader.close()


def summarize_tables(connection: Connection) -> dict[str, TableSummary]:
    """Rows and a checksum of their values, per table, in primary-key order."""
    inspector = inspect(connection)
    summary = {}
    for table in sorted(inspector.get_table_names()):
        keys = inspector.get_pk_constraint(table)["constrained_columns"]
        columns = keys or [column["name"] for column in inspector.get_columns(table)]
        order = ", ".join(f'"{column}"' for column in columns)
        digest = hashlib.sha256()
        rows = 0
        for row in connection.execute(text(f'SELECT * FROM "{table}" ORDER BY {order}')):
            digest.update(repr(tuple(row)).encode())
            rows += 1
        summary[table] = TableSummary(rows, digest.hexdigest())
    return summary


def summarize_database(url: str) -> dict[str, TableSummary]:
    with engine_for(sqlalchemy_url(url)) as engine, engine.connect() as connection:
        return summarize_tables(connection)


def list_tables(url: str) -> list[str]:
    with engine_for(sqlalchemy_url(url)) as engine, engine.connect() as connection:
        return sorted(inspect(connection).get_table_names())


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def dump_postgresql(url: str, target: Path) -> dict[str, TableSummary]:
    """`pg_dump -Fc` of `url` into `target`; the rows' summary from the same snapshot."""
    with engine_for(sqlalchemy_url(url)) as engine, engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            connection.execute(text("SET TRANSACTION READ ONLY"))
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            run_pg_tool("pg_dump", url, "-Fc", "--no-owner", f"--snapshot={snapshot}", "-f", target)
            return summarize_tables(connection)


def restore_postgresql(url: str, dump: Path) -> None:
    """`pg_restore` a custom-format dump into the (empty) database of `url`."""
    run_pg_tool("pg_restore", url, "--no-owner", "--exit-on-error", "--single-transaction", dump)


def empty_postgresql(url: str) -> None:
    """Drop every table, view and sequence of the public schema (a forced restore)."""
    with engine_for(sqlalchemy_url(url)) as engine, engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))


def run_pg_tool(tool: str, url: str, *args: str | Path) -> None:
    """Run pg_dump/pg_restore on `url`'s database, the password through the environment."""
    parsed = libpq_url(url)
    command = [
        tool,
        "--host", parsed.host or "127.0.0.1",
        "--port", str(parsed.port or 5432),
        "--username", parsed.username or os.environ.get("USER", "postgres"),
        "--dbname", parsed.database or "postgres",
        *map(str, args),
    ]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": parsed.password or "", "PGCONNECT_TIMEOUT": "10"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT)
    except FileNotFoundError:
        raise DatabaseBackupError(
            f"{tool} is not installed: apt-get install -y postgresql-client"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise DatabaseBackupError(f"{tool} failed on {parsed.database}: {lines[-1]}")


def libpq_url(url: str) -> URL:
    """`url` as libpq reads it (any SQLAlchemy driver suffix dropped)."""
    parsed = make_url(url)
    if parsed.drivername.split("+")[0] not in ("postgresql", "postgres"):
        raise DatabaseBackupError(f"{parsed.render_as_string()} is not a PostgreSQL database")
    return parsed


def sqlalchemy_url(url: str) -> str:
    """`url` for SQLAlchemy: a bare `postgresql://` one (Orthanc's setting) gets the installed
    psycopg driver; others are kept."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)
