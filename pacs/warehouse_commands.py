"""`pacs warehouse refresh`: the warehouse flow, in-process."""

from __future__ import annotations

import time
from typing import TextIO

import duckdb
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from pacs.engine import use_engine
from warehouse.build import WarehouseError


def run_refresh(settings: Settings, full: bool, out: TextIO) -> int:
    started = time.perf_counter()
    with use_engine(settings):
        from flows.refresh_warehouse import refresh_warehouse

        try:
            summary = refresh_warehouse(full=full)
        except (duckdb.Error, SQLAlchemyError) as error:
            raise WarehouseError(f"warehouse refresh failed: {error}") from None
    out.write(
        f"warehouse: {summary.mode} refresh in {time.perf_counter() - started:.1f} s, "
        f"{summary.studies_extracted} studies and {summary.events_extracted} events read, "
        f"{summary.studies} studies in {summary.path}\n"
    )
    return 0
