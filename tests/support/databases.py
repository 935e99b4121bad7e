"""Databases at this release's schema for tests: the migrations run once per test process,
on a template, and each test gets a copy of it (`new_database`)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from storage.database import create_database_engine
from storage.schema import upgrade_database


@functools.cache
def database_template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="pacs-schema-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "pacs.sqlite3"
    engine = create_database_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    engine.dispose()  # the last connection folds the WAL into the file
    return path


def new_database(path: Path) -> str:
    """A new database at `path` at this release's schema; its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(database_template(), path)
    return f"sqlite:///{path}"
