"""Prefect tasks of the warehouse refresh: read the marks, extract from the operational
database (retried: it may be busy), build and swap the DuckDB file."""

from __future__ import annotations

import datetime

from config.settings import Settings
from storage.database import get_engine
from tasks.retries import database_task, once_task
from warehouse.build import BuildSummary, build_warehouse, read_marks
from warehouse.extract import Extract, Marks, extract_changes


@once_task
def load_warehouse_marks(settings: Settings) -> Marks | None:
    return read_marks(settings.warehouse_path)


@database_task
def extract_operational_changes(settings: Settings, marks: Marks | None) -> Extract:
    return extract_changes(get_engine(settings.database_url), marks)


@once_task
def build_warehouse_file(settings: Settings, extract: Extract, incremental: bool) -> BuildSummary:
    return build_warehouse(
        settings.warehouse_path,
        extract,
        incremental=incremental,
        timezone=settings.timezone,
        tat_targets=settings.tat_targets,
        now=datetime.datetime.now(datetime.UTC),
    )
