"""Databases at this release's schema for tests: the migrations run once per test process,
on a template, and each test gets a copy of it (`new_database`).

On SQLite the template is a file, copied. On PostgreSQL it is a database of one server per
test process (started on first use, stopped at exit), and a copy is
`CREATE DATABASE ... TEMPLATE` (~50 ms); `drop_database` removes it, ending its connections.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from sqlalchemy.engine import make_url

from storage.database import create_database_engine
from storage.schema import upgrade_database

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

BACKENDS = ("sqlite", "postgresql")
TEMPLATE = "pacs_template"
_numbers = itertools.count(1)


@functools.cache
def database_template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="pacs-schema-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "pacs.sqlite3"
    engine = create_database_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    engine.dispose()  # the last connection folds the WAL into the file
    return path


@functools.cache
def postgres_server() -> PostgresServer:
    """The test process's PostgreSQL server, with a template database at this release's schema."""
    from tests.support.postgres import start_postgres  # it imports the services, which import us

    server = start_postgres(TEMPLATE)
    atexit.register(stop_postgres_server)
    engine = create_database_engine(server.url(TEMPLATE))
    upgrade_database(engine)
    engine.dispose()  # a template with a connection open cannot be copied
    return server


def stop_postgres_server() -> None:
    """Stop the test process's server if it started (at the session's end, and at exit)."""
    if postgres_server.cache_info().currsize:
        server = postgres_server()
        postgres_server.cache_clear()
        server.stop()


def new_database(path: Path, backend: str = "sqlite") -> str:
    """A new database at this release's schema; its URL. On SQLite the file `path`, on
    PostgreSQL a database of the test process's server (named after nothing in `path`)."""
    if backend == "postgresql":
        server = postgres_server()
        name = f"pacs_{next(_numbers)}"
        administer(server, f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
        return server.url(name)
    if backend != "sqlite":
        raise ValueError(f"unknown database backend {backend!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(database_template(), path)
    return f"sqlite:///{path}"


def drop_database(url: str) -> None:
    """Remove a PostgreSQL database made by `new_database` (and end its connections); a
    SQLite file goes with its test's temporary folder."""
    if make_url(url).get_backend_name() != "postgresql":
        return
    administer(
        postgres_server(), f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'
    )


def administer(server: PostgresServer, statement: str) -> None:
    with psycopg.connect(server.url("postgres", driver="postgresql"), autocommit=True) as admin:
        admin.execute(statement)
