"""Read what changed in the operational database since the last refresh into Polars frames.

Only the columns analytics needs leave the database: no patient names or identifiers, no
report text (the event `detail` only for assignments, where it is the assignee's e-mail),
and of orders only their times and states.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import polars as pl
from sqlalchemy import Connection, Engine, bindparam, text

from core.study_events import StudyEventKind
from storage.models.base import UtcDateTime

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
LAST_EVENT_SQL = "SELECT coalesce(max(id), 0) FROM study_events"
USERS_SQL = "SELECT id, email, display_name, role FROM users"


def extract_changes(engine: Engine, since: Marks | None) -> Extract:
    """Everything when `since` is None, else what changed after those marks (with margins)."""
    with engine.connect() as connection:
        # Events up to this id, the next refresh's mark (taken first: later ones wait for it).
        last_event = connection.execute(text(LAST_EVENT_SQL)).scalar_one()
        if since is None:
            studies = read_frame(connection, text(STUDIES_SQL), STUDY_COLUMNS)
            events = read_frame(
                connection, text(EVENTS_SQL), EVENT_COLUMNS, event_id=0, last_event=last_event
            )
            orders = read_frame(connection, text(ORDERS_SQL), ORDER_COLUMNS)
        else:
            oldest = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
            studies = read_frame(
                connection,
                text(CHANGED_STUDIES_SQL).bindparams(
                    bindparam("ingested_at", type_=UtcDateTime()),
                    bindparam("removed_at", type_=UtcDateTime()),
                ),
                STUDY_COLUMNS,
                study_id=since.study_id,
                event_id=max(0, since.event_id - EVENT_ID_LOOKBACK),
                last_event=last_event,
                ingested_at=as_utc(since.ingested_at, TIME_LOOKBACK) or oldest,
                removed_at=as_utc(since.removed_at, TIME_LOOKBACK) or oldest,
            )
            events = read_frame(
                connection,
                text(EVENTS_SQL),
                EVENT_COLUMNS,
                event_id=max(0, since.event_id - EVENT_ID_LOOKBACK),
                last_event=last_event,
            )
            orders = read_frame(
                connection,
                text(CHANGED_ORDERS_SQL).bindparams(
                    bindparam("order_updated_at", type_=UtcDateTime())
                ),
                ORDER_COLUMNS,
                order_updated_at=as_utc(since.order_updated_at, TIME_LOOKBACK) or oldest,
            )
        users = read_frame(connection, text(USERS_SQL), USER_COLUMNS)
    marks = advance_marks(since or Marks(), studies, orders, last_event)
    return Extract(studies, events, orders, users, marks)


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


def as_utc(value: datetime.datetime | None, margin: datetime.timedelta) -> datetime.datetime | None:
    return None if value is None else (value - margin).replace(tzinfo=datetime.UTC)


def read_frame(
    connection: Connection, statement, columns: dict[str, pl.DataType], **params
) -> pl.DataFrame:
    """Rows as a frame of `columns`' types. SQLite returns times as text, PostgreSQL as
    datetimes: both become naive UTC (or naive local for the DICOM and HL7 times)
    microseconds."""
    rows = connection.execute(statement, params).fetchall()
    if not rows:
        return pl.DataFrame(schema=columns)
    # Told the types, Polars does not infer them from a million rows (twice as fast).
    as_read = {
        name: pl.String
        if isinstance(dtype, pl.Datetime) and connection.dialect.name == "sqlite"
        else dtype
        for name, dtype in columns.items()
    }
    frame = pl.DataFrame(rows, schema=as_read, orient="row")
    return frame.with_columns(cast_column(frame[name], dtype) for name, dtype in columns.items())


def cast_column(series: pl.Series, dtype: pl.DataType) -> pl.Series:
    if not isinstance(dtype, pl.Datetime):
        return series.cast(dtype)
    if series.dtype == pl.String:
        return series.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
    if isinstance(series.dtype, pl.Datetime) and series.dtype.time_zone is not None:
        series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return series.cast(dtype)
