"""Read what changed in the operational database since the last refresh into Polars frames.

Only the columns analytics needs leave the database: no patient names or identifiers, no
report text (the event `detail` only for assignments, where it is the assignee's e-mail),
and of orders only their times and states.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import URL, Engine, text

from core.study_events import StudyEventKind
from warehouse.sqlite_arrow import read_sqlite_tables

# Rows committed slightly out of id or time order (PostgreSQL sequences, clocks) are read
# again within these margins; the merge keeps one version of each row by id.
EVENT_ID_LOOKBACK = 1000
TIME_LOOKBACK = datetime.timedelta(minutes=5)

STUDY_COLUMNS = {
    "id": pl.Int64,
    "study_instance_uid": pl.String,
    "accession_number": pl.String,
    "status": pl.String,
    "modality": pl.String,
    "priority": pl.String,
    "body_part": pl.String,
    "institution": pl.String,
    "referring_physician": pl.String,
    "assignee_id": pl.Int64,
    "ordered_at": pl.Datetime("us"),  # local wall clock, as DICOM gives it
    "study_datetime": pl.Datetime("us"),  # local, as the three below
    "first_instance_at": pl.Datetime("us"),
    "last_instance_at": pl.Datetime("us"),
    "received_at": pl.Datetime("us"),
    "ingested_at": pl.Datetime("us"),
    "removed_at": pl.Datetime("us"),
    "series_count": pl.Int32,
    "instance_count": pl.Int32,
}
EVENT_COLUMNS = {
    "id": pl.Int64,
    "study_id": pl.Int64,
    "at": pl.Datetime("us"),
    "kind": pl.String,
    "user_email": pl.String,
    "detail": pl.String,
}
ORDER_COLUMNS = {
    "id": pl.Int64,
    "study_id": pl.Int64,
    "status": pl.String,
    "ordered_at": pl.Datetime("us"),  # local wall clock, as HL7 gives it
    "exam_started_at": pl.Datetime("us"),  # local, from the MPPS (or the study when none)
    "exam_ended_at": pl.Datetime("us"),
    "has_mpps": pl.Int32,  # 1 when an MPPS told the exam's times
    "updated_at": pl.Datetime("us"),  # UTC
}
USER_COLUMNS = {"id": pl.Int64, "email": pl.String, "display_name": pl.String, "role": pl.String}


@dataclass(frozen=True)
class Marks:
    """How far the previous refresh read: the highest event and study ids and times seen."""

    event_id: int = 0
    study_id: int = 0
    ingested_at: datetime.datetime | None = None  # naive UTC
    removed_at: datetime.datetime | None = None  # naive UTC
    order_updated_at: datetime.datetime | None = None  # naive UTC


@dataclass(frozen=True)
class Extract:
    studies: pl.DataFrame  # new or changed since the marks (all of them on a full refresh)
    events: pl.DataFrame
    orders: pl.DataFrame  # new or changed since the marks, linked to a study or not
    users: pl.DataFrame  # always all: a small table
    marks: Marks  # for the next refresh


# The events analytics reads: reporting steps and assignments (not `received` or `priority`).
EVENT_KINDS = (
    StudyEventKind.OPENED,
    StudyEventKind.REPORT_STARTED,
    StudyEventKind.PRELIMINARY,
    StudyEventKind.FINAL,
    StudyEventKind.ADDENDUM,
    StudyEventKind.ASSIGNED,
    StudyEventKind.RELEASED,
)


def quote_kind(kind: StudyEventKind) -> str:
    return f"'{kind.value}'"


STUDIES_SQL = f"SELECT {', '.join(STUDY_COLUMNS)} FROM studies"
CHANGED_STUDIES_SQL = (
    STUDIES_SQL + " WHERE id > :study_id OR ingested_at > :ingested_at OR removed_at > :removed_at"
    " OR id IN (SELECT study_id FROM study_events WHERE id > :event_id AND id <= :last_event)"
)
EVENTS_SQL = (
    "SELECT id, study_id, at, kind, user_email,"
    f" CASE WHEN kind = {quote_kind(StudyEventKind.ASSIGNED)} THEN detail ELSE '' END AS detail"
    " FROM study_events WHERE id > :event_id AND id <= :last_event"
    f" AND kind IN ({', '.join(map(quote_kind, EVENT_KINDS))})"
)
ORDERS_SQL = (
    "SELECT id, study_id, status, ordered_at, exam_started_at, exam_ended_at,"
    " CASE WHEN mpps_uid IS NULL THEN 0 ELSE 1 END AS has_mpps, updated_at FROM orders"
)
CHANGED_ORDERS_SQL = ORDERS_SQL + " WHERE updated_at > :order_updated_at"
LAST_EVENT_SQL = "SELECT coalesce(max(id), 0) AS last FROM study_events"
USERS_SQL = "SELECT id, email, display_name, role FROM users"


def extract_changes(engine: Engine, since: Marks | None) -> Extract:
    """Everything when `since` is None, else what changed after those marks (with margins)."""
    # Events up to this id, the next refresh's mark (taken first: later ones wait for it).
    with engine.connect() as connection:
        last_event = connection.execute(text(LAST_EVENT_SQL)).scalar_one()
    if since is None:
        studies = Query(STUDIES_SQL, STUDY_COLUMNS, {})
        events = Query(EVENTS_SQL, EVENT_COLUMNS, {"event_id": 0, "last_event": last_event})
        orders = Query(ORDERS_SQL, ORDER_COLUMNS, {})
    else:
        oldest = datetime.datetime(1970, 1, 1)
        event_id = max(0, since.event_id - EVENT_ID_LOOKBACK)
        times = {
            "ingested_at": (since.ingested_at or oldest) - TIME_LOOKBACK,
            "removed_at": (since.removed_at or oldest) - TIME_LOOKBACK,
            "order_updated_at": (since.order_updated_at or oldest) - TIME_LOOKBACK,
        }
        if engine.dialect.name == "sqlite":  # compared as SQLAlchemy stores them there: text
            times = {name: value.strftime("%Y-%m-%d %H:%M:%S.%f") for name, value in times.items()}
        studies = Query(
            CHANGED_STUDIES_SQL,
            STUDY_COLUMNS,
            {
                "study_id": since.study_id,
                "event_id": event_id,
                "last_event": last_event,
                "ingested_at": times["ingested_at"],
                "removed_at": times["removed_at"],
            },
        )
        events = Query(EVENTS_SQL, EVENT_COLUMNS, {"event_id": event_id, "last_event": last_event})
        orders = Query(
            CHANGED_ORDERS_SQL, ORDER_COLUMNS, {"order_updated_at": times["order_updated_at"]}
        )
    users = Query(USERS_SQL, USER_COLUMNS, {})
    studies, events, orders, users = read_frames(engine.url, [studies, events, orders, users])
    marks = advance_marks(since or Marks(), studies, orders, last_event)
    return Extract(studies, events, orders, users, marks)


def fingerprint_extract() -> str:
    """What the extract reads: its statements and column types. A warehouse built from
    another extract is rebuilt from a full one (its raw tables have other columns)."""
    statements = (
        STUDIES_SQL, CHANGED_STUDIES_SQL, EVENTS_SQL, ORDERS_SQL, CHANGED_ORDERS_SQL, USERS_SQL
    )  # fmt: skip
    columns = [[f"{name}:{dtype}" for name, dtype in table.items()] for table in
               (STUDY_COLUMNS, EVENT_COLUMNS, ORDER_COLUMNS, USER_COLUMNS)]  # fmt: skip
    return hashlib.sha256(repr((statements, columns)).encode()).hexdigest()


@dataclass(frozen=True)
class Query:
    sql: str  # with `:name` parameters
    columns: dict[str, pl.DataType]  # the frame's columns and types
    params: dict[str, Any]


def read_frames(url: URL, queries: list[Query]) -> list[pl.DataFrame]:
    """The results of `queries` as frames, read as Arrow columns (ADBC), not Python tuples.

    SQLite is read in a child process (warehouse/sqlite_arrow.py): ADBC's driver carries a
    SQLite of its own, and two SQLite libraries in one process release each other's file
    locks (a reader's close broke the process's other connections: "disk I/O error")."""
    if url.get_backend_name() == "sqlite":
        statements = [(positional(q.sql, q.params, "?"), list(q.params.values())) for q in queries]
        tables = read_sqlite_tables(url.database, statements)
    else:
        import adbc_driver_postgresql.dbapi

        uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
        tables = []
        with adbc_driver_postgresql.dbapi.connect(uri) as connection, connection.cursor() as cursor:
            for query in queries:
                values = tuple(query.params.values())
                cursor.execute(positional(query.sql, query.params, "$"), values or None)
                tables.append(cursor.fetch_arrow_table())
    return [as_frame(table, query.columns) for table, query in zip(tables, queries, strict=True)]


def positional(sql: str, params: dict[str, Any], mark: str) -> str:
    """`sql` with numbered placeholders (?1 on SQLite, $1 on PostgreSQL) for `:name` ones."""
    names = list(params)
    return re.sub(r":(\w+)", lambda match: f"{mark}{names.index(match[1]) + 1}", sql)


def as_frame(table: pa.Table, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """An Arrow table as a frame of `columns`' types. SQLite returns times as text, parsed
    here by Arrow's ISO 8601 cast (six times quicker than Polars' strptime on millions of
    rows); PostgreSQL returns timestamps. Both become naive UTC (or naive local for the
    DICOM and HL7 times) microseconds."""
    if not table.num_rows:
        return pl.DataFrame(schema=columns)
    table = table.select(list(columns))
    for index, (name, dtype) in enumerate(columns.items()):
        if isinstance(dtype, pl.Datetime) and pa.types.is_string(table.field(name).type):
            table = table.set_column(index, name, pc.cast(table[name], pa.timestamp("us")))
    frame = pl.from_arrow(table)
    return frame.select(cast_column(frame[name], dtype) for name, dtype in columns.items())


def advance_marks(
    since: Marks, studies: pl.DataFrame, orders: pl.DataFrame, last_event: int
) -> Marks:
    def highest(frame: pl.DataFrame, column: str, previous):
        value = frame[column].max() if frame.height else None
        return previous if value is None or (previous is not None and value < previous) else value

    return Marks(
        event_id=max(last_event, since.event_id),
        study_id=highest(studies, "id", since.study_id),
        ingested_at=highest(studies, "ingested_at", since.ingested_at),
        removed_at=highest(studies, "removed_at", since.removed_at),
        order_updated_at=highest(orders, "updated_at", since.order_updated_at),
    )


def cast_column(series: pl.Series, dtype: pl.DataType) -> pl.Series:
    if not isinstance(dtype, pl.Datetime):
        return series.cast(dtype)
    if isinstance(series.dtype, pl.Datetime) and series.dtype.time_zone is not None:
        series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return series.cast(dtype)
