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
import hashlib
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from core.turnaround import AGE_BUCKETS
from warehouse.extract import Extract, Marks, fingerprint_extract

MODELS_DIR = Path(__file__).resolve().parent / "models"
# Model name -> its key columns, checked unique and not null after every build (dbt's
# `unique` and `not_null` tests). Staging models are views, marts tables, built in this order.
STAGING_KEYS = {
    "stg_studies": ("study_id",),
    "stg_report_events": ("event_id",),
    "stg_assignments": ("event_id",),
    "stg_users": ("user_id",),
    "stg_orders": ("order_id",),
}
# The turnaround aggregates: one model (agg_turnaround.sql), a table per period with its
# key column and the local date that starts it.
TURNAROUND_PERIODS = {
    "agg_turnaround_daily": ("day", "final_date"),
    "agg_turnaround_weekly": ("week", "date_trunc('week', final_date)::date"),
}
MART_KEYS = {
    "fct_study_turnaround": ("study_id",),
    **{name: (period, "dimension", "value") for name, (period, _) in TURNAROUND_PERIODS.items()},
    "agg_backlog": ("age_bucket", "modality", "priority"),
}
MODEL_KEYS = {**STAGING_KEYS, **MART_KEYS}
RAW_TABLES = ("raw_studies", "raw_study_events", "raw_users", "raw_orders")


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
    """Where the previous build stopped reading, or None when a full build is needed: no
    file, or one built from another extract (`fingerprint_extract`)."""
    if not path.exists():
        return None
    try:
        with attach_read_only(path) as con:
            rows = con.sql(
                "select event_id_mark, study_id_mark, ingested_at_mark, removed_at_mark,"
                " order_updated_at_mark, extract_fingerprint from meta_refresh"
            ).fetchall()
    except duckdb.Error:
        return None  # an older or damaged file: rebuild it from scratch
    if not rows or rows[0][-1] != fingerprint_extract():
        return None
    return Marks(*rows[0][:-1])


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
    """Build into a new file, check the models' keys, and swap it in place of `path`.

    Full: every table from the extract. Incremental: a copy of the previous file, its raw
    tables merged with the extract, and only the studies and days the changes touch built
    again (all models, when their SQL, the time zone or the targets changed since)."""
    building = path.with_name(f"{path.name}.{os.getpid()}.building")
    building.unlink(missing_ok=True)
    built_at = now.astimezone(datetime.UTC).replace(tzinfo=None)
    mode = "incremental" if incremental and path.exists() else "full"
    fingerprint = fingerprint_models(timezone, tat_targets)
    try:
        if mode == "incremental":
            shutil.copyfile(path, building)
        with duckdb.connect(str(building)) as con:
            for name, frame in (
                ("new_raw_studies", extract.studies),
                ("new_raw_study_events", extract.events),
                ("new_raw_users", extract.users),
                ("new_raw_orders", extract.orders),
            ):
                con.register(name, frame)
            if mode == "incremental":
                unchanged = read_fingerprint(con) == fingerprint
                merge_raw_tables(con)
            else:
                unchanged = False
                create_raw_tables(con)
            load_meta_tables(con, extract.marks, mode, timezone, tat_targets, built_at, fingerprint)
            if unchanged:
                update_models(con)
                problems = check_keys(con, MART_KEYS)
            else:
                build_models(con)
                problems = check_keys(con, MODEL_KEYS)
            if problems:
                raise WarehouseError("warehouse checks failed: " + "; ".join(problems))
            studies = con.sql("select count(*) from fct_study_turnaround").fetchall()[0][0]
            con.execute("checkpoint")
        os.replace(building, path)
    except BaseException:
        building.unlink(missing_ok=True)
        raise
    return BuildSummary(
        path, mode, extract.studies.height, extract.events.height, studies, built_at
    )


def fingerprint_models(timezone: str, tat_targets: Mapping[str, int]) -> str:
    """What the models' rows depend on besides the data: their SQL, the settings and the
    extract's columns."""
    digest = hashlib.sha256(
        f"{timezone}|{sorted(tat_targets.items())}|{AGE_BUCKETS}|{fingerprint_extract()}".encode()
    )
    for model in sorted(MODELS_DIR.glob("*/*.sql")):
        digest.update(model.read_bytes())
    return digest.hexdigest()


def read_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    try:
        return con.sql("select models_fingerprint from meta_refresh").fetchall()[0][0]
    except duckdb.Error:
        return None


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    for name in RAW_TABLES:
        con.execute(f"create table {name} as select * from new_{name}")


def merge_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """New versions of changed rows replace the old ones (by id); users are read whole. The
    studies of the orders replaced are kept aside: an order moved to another study changes
    the one it left too."""
    con.execute(
        "create temp table replaced_order_studies as select study_id from raw_orders"
        " where id in (select id from new_raw_orders) and study_id is not null"
    )
    for name in RAW_TABLES:
        if name == "raw_users":
            con.execute("delete from raw_users")
        else:
            con.execute(f"delete from {name} where id in (select id from new_{name})")
        con.execute(f"insert into {name} by name select * from new_{name}")


def update_models(con: duckdb.DuckDBPyConnection) -> None:
    """Build again only the studies the extract touched (and the backlog, whose age moved
    on), then the days and weeks of their final reports before and after.

    The model SQL stays as written: temporary views named like the models they narrow
    (`stg_studies` -> the affected studies only) shadow them while it runs."""
    con.execute(
        "create temp table affected as select id as study_id from new_raw_studies"
        " union select study_id from new_raw_study_events"
        " union select study_id from new_raw_orders where study_id is not null"
        " union select study_id from replaced_order_studies"
        " union select study_id from fct_study_turnaround where backlog_age_minutes is not null"
    )
    in_affected = "study_id in (select study_id from affected)"
    days = "select final_date as day from fct_study_turnaround where final_date is not null"
    con.execute(f"create temp table affected_days as {days} and {in_affected}")
    narrow = {
        "stg_studies": in_affected,
        "stg_report_events": in_affected,
        "stg_orders": in_affected,
    }
    with narrowed(con, narrow):
        con.execute(f"delete from fct_study_turnaround where {in_affected}")
        con.execute(
            "insert into fct_study_turnaround by name "
            + read_model("marts", "fct_study_turnaround")
        )
    con.execute(f"insert into affected_days {days} and {in_affected}")
    for model, (key, bucket) in TURNAROUND_PERIODS.items():
        touched = f"select distinct {bucket.replace('final_date', 'day')} from affected_days"
        with narrowed(con, {"fct_study_turnaround": f"{bucket} in ({touched})"}):
            con.execute(f"delete from {model} where {key} in ({touched})")
            con.execute(f"insert into {model} by name " + read_model("marts", model))
    con.execute(f"create or replace table agg_backlog as {read_model('marts', 'agg_backlog')}")


@contextmanager
def narrowed(con: duckdb.DuckDBPyConnection, filters: Mapping[str, str]) -> Iterator[None]:
    """Temporary views that shadow `filters`' models with only their rows matching."""
    database = con.sql("select current_database()").fetchall()[0][0]
    for model, condition in filters.items():
        con.execute(
            f'create temp view {model} as select * from "{database}".main.{model} where {condition}'
        )
    try:
        yield
    finally:
        for model in filters:
            con.execute(f"drop view temp.main.{model}")


def load_meta_tables(
    con: duckdb.DuckDBPyConnection,
    marks: Marks,
    mode: str,
    timezone: str,
    tat_targets: Mapping[str, int],
    built_at: datetime.datetime,
    fingerprint: str,
) -> None:
    """The build's settings and marks, as tables the models join (and the next build reads)."""
    con.execute(
        "create or replace table meta_refresh as select $fingerprint as models_fingerprint,"
        " $built_at::timestamp as built_at_utc,"
        " $timezone as timezone, $mode as mode, $event_id::bigint as event_id_mark,"
        " $study_id::bigint as study_id_mark, $ingested_at::timestamp as ingested_at_mark,"
        " $removed_at::timestamp as removed_at_mark,"
        " $order_updated_at::timestamp as order_updated_at_mark, $extract as extract_fingerprint",
        {
            "built_at": built_at,
            "timezone": timezone,
            "mode": mode,
            "event_id": marks.event_id,
            "study_id": marks.study_id,
            "ingested_at": marks.ingested_at,
            "removed_at": marks.removed_at,
            "order_updated_at": marks.order_updated_at,
            "fingerprint": fingerprint,
            "extract": fingerprint_extract(),
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
        con.execute(f"create or replace table {name} as select * from new_{name}")
        con.unregister(f"new_{name}")


def build_models(con: duckdb.DuckDBPyConnection) -> None:
    """Every model from the raw tables; the fact table in final-date order, so that a date
    range reads only the row groups it needs."""
    for name in STAGING_KEYS:
        con.execute(f"create or replace view {name} as {read_model('staging', name)}")
    for name in MART_KEYS:
        order = " order by final_date, study_id" if name == "fct_study_turnaround" else ""
        con.execute(
            f"create or replace table {name} as select * from ({read_model('marts', name)})" + order
        )


def quote_path(path: Path) -> str:
    """`path` as the inside of an SQL string literal."""
    return str(path).replace("'", "''")


def read_model(layer: str, name: str) -> str:
    """A model's SQL; a turnaround aggregate's is the one model with its period filled in."""
    if name in TURNAROUND_PERIODS:
        period, start = TURNAROUND_PERIODS[name]
        sql = (MODELS_DIR / layer / "agg_turnaround.sql").read_text()
        return sql.format(period=period, period_start=start)
    return (MODELS_DIR / layer / f"{name}.sql").read_text()


def check_keys(
    con: duckdb.DuckDBPyConnection, models: Mapping[str, tuple[str, ...]] = MODEL_KEYS
) -> list[str]:
    """The models' keys unique and not null; the problems found, if any."""
    problems = []
    for model, keys in models.items():
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
