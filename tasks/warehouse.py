"""Prefect tasks of the warehouse refresh: read the marks, extract from the operational
database (retried: it may be busy), build and swap the DuckDB file."""

from __future__ import annotations

import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from config.settings import Settings
from storage.database import get_engine
from warehouse.build import BuildSummary, build_warehouse, read_marks
from warehouse.extract import Extract, Marks, extract_changes


@task(cache_policy=NO_CACHE)
def load_warehouse_marks(settings: Settings) -> Marks | None:
    return read_marks(settings.warehouse_path)


@task(retries=2, retry_delay_seconds=[1, 5], cache_policy=NO_CACHE)
def extract_operational_changes(settings: Settings, marks: Marks | None) -> Extract:
    return extract_changes(get_engine(settings.database_url), marks)


@task(cache_policy=NO_CACHE)
def build_warehouse_file(settings: Settings, extract: Extract, incremental: bool) -> BuildSummary:
    return build_warehouse(
        settings.warehouse_path,
        extract,
        incremental=incremental,
        timezone=settings.timezone,
        tat_targets=settings.tat_targets,
        now=datetime.datetime.now(datetime.UTC),
    )
