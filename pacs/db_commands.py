"""`pacs db upgrade|current|history`: the operational database's schema migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from config.settings import Settings
from storage.database import create_database_engine
from storage.schema import (
    SchemaError,
    SchemaState,
    describe_database,
    read_schema_state,
    script_directory,
    upgrade_database,
)


@contextmanager
def open_engine(settings: Settings) -> Iterator[Engine]:
    engine = create_database_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def describe_state(state: SchemaState) -> str:
    if state.legacy:
        return "made before migrations (no revision)"
    return ", ".join(state.current) or "empty (no revision)"


def upgrade_schema(settings: Settings) -> tuple[SchemaState, SchemaState]:
    """Bring the database to this release's schema; its state before and after."""
    with open_engine(settings) as engine:
        try:
            return upgrade_database(engine)
        except OperationalError as error:
            where = describe_database(engine)
            raise SchemaError(f"cannot upgrade the database {where}: {error.orig}") from None


def run_upgrade(settings: Settings, out: TextIO) -> int:
    """`pacs db upgrade` (and the start of `pacs up`): upgrade and say what changed."""
    before, after = upgrade_schema(settings)
    if before != after:
        changed = f"from {describe_state(before)} to {describe_state(after)}"
        out.write(f"pacs: database upgraded {changed}\n")
    else:
        out.write(f"pacs: database already at {describe_state(after)}\n")
    return 0


def print_current(settings: Settings, out: TextIO) -> int:
    with open_engine(settings) as engine, engine.connect() as connection:
        state = read_schema_state(connection)
    if state.up_to_date:
        out.write(f"{describe_state(state)} (head)\n")
    elif state.unknown:
        out.write(f"{describe_state(state)} (newer than this release)\n")
    else:
        out.write(
            f"{describe_state(state)} (behind this release's {', '.join(state.heads)}: "
            f"run `pacs db upgrade`)\n"
        )
    return 0


def print_history(settings: Settings, out: TextIO) -> int:
    """Every revision, newest first, marking the database's and this release's heads."""
    with open_engine(settings) as engine, engine.connect() as connection:
        state = read_schema_state(connection)
    for revision in script_directory().walk_revisions():
        marks = [
            mark
            for mark, applies in (
                ("head", revision.is_head),
                ("current", revision.revision in state.current),
            )
            if applies
        ]
        suffix = f" ({', '.join(marks)})" if marks else ""
        out.write(f"{revision.revision}: {revision.doc}{suffix}\n")
    return 0
