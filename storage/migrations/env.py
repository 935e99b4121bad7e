"""Alembic's environment: the app's metadata and the database to migrate.

`storage.schema.upgrade_database` passes an open connection (it holds the migration lock);
the `alembic` command line (`alembic revision --autogenerate`, run from the checkout) gets
the database from the platform's settings (`PACS_DATABASE_URL`, `PACS_HOME`).
"""

from __future__ import annotations

from typing import Any

from alembic import context

from storage.database import create_database_engine
from storage.models import Base
from storage.models.base import UtcDateTime
from storage.schema import comparable_objects

config = context.config


def render_item(kind: str, item: Any, autogen_context: Any) -> str | bool:
    """UtcDateTime is an application type: a revision holds the plain DateTime it stores."""
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime()"
    return False


def run_migrations(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        render_item=render_item,
        include_object=comparable_objects(Base.metadata, connection.dialect.name),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_from_settings() -> None:
    from config.settings import load_settings

    engine = create_database_engine(load_settings().database_url)
    try:
        with engine.connect() as connection:
            run_migrations(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `pacs db upgrade`")
connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    run_from_settings()
