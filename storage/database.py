"""The operational database's engine and sessions (its models are in `storage/models/`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Base


def create_database_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys. A server
    database's connections are checked before use, so a restart of it costs no request."""
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", configure_sqlite)
    return engine


def configure_sqlite(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def init_database(engine: Engine) -> None:
    """Create the tables that do not exist yet, and the audit chain's head."""
    from storage.audit_chain import start_audit_chain

    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        start_audit_chain(session)


def dialect_insert(session: Session) -> Any:
    """The INSERT construct of the session's dialect (both have ON CONFLICT upserts)."""
    name = session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert


@functools.cache
def get_engine(url: str) -> Engine:
    """The process's one engine (connection pool) for `url`, made and migrated on first use."""
    engine = create_database_engine(url)
    init_database(engine)
    return engine


@contextmanager
def open_session(url: str) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session, session.begin():
        yield session
