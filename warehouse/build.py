"""Build the DuckDB warehouse from an extract: raw tables, staging views, mart tables, key
checks, then an atomic swap.

The build writes a new file next to the warehouse and renames it over the old one only
when every check passed: the portal's read-only connections never wait for the writer and
never see half a build (a reader still holding the old file keeps reading it). An
incremental build copies the previous file's raw tables, replaces the changed studies,
appends the new events, and rebuilds the models from there.
"""

from __future__ import annotations

import datetime
import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from core.turnaround import AGE_BUCKETS
from warehouse.extract import Extract, Marks

MODELS_DIR = Path(__file__).resolve().parent / "models"
# Model name -> its key columns, checked unique and not null after every build (dbt's
# `unique` and `not_null` tests). Staging models are views, marts tables, built in this order.
STAGING_KEYS = {
    "stg_studies": ("study_id",),
    "stg_report_events": ("event_id",),
    "stg_assignments": ("event_id",),
    "stg_users": ("user_id",),
}
MART_KEYS = {
    "fct_study_turnaround": ("study_id",),
    "agg_turnaround_daily": ("day", "dimension", "value"),
    "agg_turnaround_weekly": ("week", "dimension", "value"),
    "agg_backlog": ("age_bucket", "modality", "priority"),
}
MODEL_KEYS = {**STAGING_KEYS, **MART_KEYS}


class WarehouseError(RuntimeError):
    """The warehouse could not be built or read; the message says why."""


@dataclass(frozen=True)
class BuildSummary:
    path: Path
    mode: str  # full or incremental
    studies_extracted: int
    events_extracted: int
    studies: int  # rows in fct_study_turnaround
    built_at: datetime.datetime  # naive UTC


@contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """One refresh at a time (the pipeline's timer and `pacs warehouse refresh` may meet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_marks(path: Path) -> Marks | None:
    """Where the previous build stopped reading, or None when a full build is needed."""
    if not path.exists():
        return None
    try:
        with attach_read_only(path) as con:
            rows = con.sql(
                "select event_id_mark, study_id_mark, ingested_at_mark, removed_at_mark"
                " from meta_refresh"
            ).fetchall()
    except duckdb.Error:
        return None  # an older or damaged file: rebuild it from scratch
    return Marks(*rows[0]) if rows else None


def attach_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the file at `path` now. Attached to an in-memory database
    rather than opened by path: for a path it has open already, DuckDB hands out that
    instance, which would be the file from before the swap."""
    con = duckdb.connect(":memory:", config={"python_enable_replacements": False})
    try:
        con.execute(f"attach '{quote_path(path)}' as warehouse (read_only)")
        con.execute("use warehouse")
    except BaseException:
        con.close()
        raise
    return con


def build_warehouse(
    path: Path,
    extract: Extract,
    *,
    incremental: bool,
    timezone: str,
    tat_targets: Mapping[str, int],
    now: datetime.datetime,
) -> BuildSummary:
    """Build into a new file, check every model's keys, and swap it in place of `path`."""
    building = path.with_name(f"{path.name}.{os.getpid()}.building")
    building.unlink(missing_ok=True)
    built_at = now.astimezone(datetime.UTC).replace(tzinfo=None)
    mode = "incremental" if incremental and path.exists() else "full"
    try:
        with duckdb.connect(str(building)) as con:
            load_raw_tables(con, extract, path if mode == "incremental" else None)
            load_meta_tables(con, extract.marks, mode, timezone, tat_targets, built_at)
            build_models(con)
            problems = check_keys(con)
            if problems:
                raise WarehouseError("warehouse checks failed: " + "; ".join(problems))
            studies = con.sql("select count(*) from fct_study_turnaround").fetchall()[0][0]
        os.replace(building, path)
    except BaseException:
        building.unlink(missing_ok=True)
        raise
    return BuildSummary(
        path, mode, extract.studies.height, extract.events.height, studies, built_at
    )


def load_raw_tables(
    con: duckdb.DuckDBPyConnection, extract: Extract, previous: Path | None
) -> None:
    """raw_* tables: the extract, merged over the previous build's when incremental."""
    frames = {"raw_studies": extract.studies, "raw_study_events": extract.events}
    for name, frame in frames.items():
        con.register(f"new_{name}", frame)
    con.register("new_raw_users", extract.users)
    if previous is None:
        for name in frames:
            con.execute(f"create table {name} as select * from new_{name}")
    else:
        con.execute(f"attach '{quote_path(previous)}' as previous (read_only)")
        for name in frames:
            con.execute(
                f"create table {name} as select * from previous.{name}"
                f" where id not in (select id from new_{name})"
                f" union all by name select * from new_{name}"
            )
        con.execute("detach previous")
    con.execute("create table raw_users as select * from new_raw_users")
    for name in (*frames, "raw_users"):
        con.unregister(f"new_{name}")


def load_meta_tables(
    con: duckdb.DuckDBPyConnection,
    marks: Marks,
    mode: str,
    timezone: str,
    tat_targets: Mapping[str, int],
    built_at: datetime.datetime,
) -> None:
    """The build's settings and marks, as tables the models join (and the next build reads)."""
    con.execute(
        "create table meta_refresh as select $built_at::timestamp as built_at_utc,"
        " $timezone as timezone, $mode as mode, $event_id::bigint as event_id_mark,"
        " $study_id::bigint as study_id_mark, $ingested_at::timestamp as ingested_at_mark,"
        " $removed_at::timestamp as removed_at_mark",
        {
            "built_at": built_at,
            "timezone": timezone,
            "mode": mode,
            "event_id": marks.event_id,
            "study_id": marks.study_id,
            "ingested_at": marks.ingested_at,
            "removed_at": marks.removed_at,
        },
    )
    targets = pl.DataFrame(
        {"priority": list(tat_targets), "target_minutes": list(tat_targets.values())},
        schema={"priority": pl.String, "target_minutes": pl.Int64},
    )
    buckets = pl.DataFrame(
        {
            "position": range(len(AGE_BUCKETS)),
            "bucket": [label for label, _, _ in AGE_BUCKETS],
            "from_minutes": [start for _, start, _ in AGE_BUCKETS],
            "to_minutes": [end for _, _, end in AGE_BUCKETS],
        },
        schema={
            "position": pl.Int32,
            "bucket": pl.String,
            "from_minutes": pl.Int64,
            "to_minutes": pl.Int64,
        },
    )
    for name, frame in (("meta_tat_targets", targets), ("meta_age_buckets", buckets)):
        con.register(f"new_{name}", frame)
        con.execute(f"create table {name} as select * from new_{name}")
        con.unregister(f"new_{name}")


def build_models(con: duckdb.DuckDBPyConnection) -> None:
    for name in STAGING_KEYS:
        con.execute(f"create view {name} as {read_model('staging', name)}")
    for name in MART_KEYS:
        con.execute(f"create table {name} as {read_model('marts', name)}")


def quote_path(path: Path) -> str:
    """`path` as the inside of an SQL string literal."""
    return str(path).replace("'", "''")


def read_model(layer: str, name: str) -> str:
    return (MODELS_DIR / layer / f"{name}.sql").read_text()


def check_keys(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every model's keys unique and not null; the problems found, if any."""
    problems = []
    for model, keys in MODEL_KEYS.items():
        columns = ", ".join(keys)
        nulls = " or ".join(f"{key} is null" for key in keys)
        total, distinct, null_rows = con.sql(
            f"select count(*), (select count(*) from (select distinct {columns} from {model})),"
            f" count(*) filter (where {nulls}) from {model}"
        ).fetchall()[0]
        if total != distinct:
            problems.append(f"{model}: {total - distinct} duplicate keys ({columns})")
        if null_rows:
            problems.append(f"{model}: {null_rows} rows with a null key ({columns})")
    return problems
