"""Flow `refresh_warehouse`: bring the DuckDB analytics warehouse up to date.

Scheduled every 5 minutes (prefect.yaml), run by the embedded pipeline of `pacs up`
and by `pacs warehouse refresh`. Incremental unless `full` or there is no warehouse yet:
only studies and events that changed since the previous build are read from the
operational database; the new file replaces the old one atomically.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from config.settings import load_settings
from tasks.warehouse import (
    build_warehouse_file,
    extract_operational_changes,
    load_warehouse_marks,
)
from warehouse.build import BuildSummary, writer_lock


@flow(name="refresh-warehouse")
def refresh_warehouse(full: bool = False) -> BuildSummary:
    settings = load_settings()
    with writer_lock(settings.warehouse_path):
        marks = None if full else load_warehouse_marks(settings)
        extract = extract_operational_changes(settings, marks)
        summary = build_warehouse_file(settings, extract, incremental=marks is not None)
    get_run_logger().info(
        f"warehouse {summary.mode} refresh: {summary.studies_extracted} studies and "
        f"{summary.events_extracted} events read, {summary.studies} studies in {summary.path}"
    )
    return summary
