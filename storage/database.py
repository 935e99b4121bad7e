"""The operational database: SQLAlchemy 2 models of studies, series, quarantine and pipeline state.

SQLite by default (WAL, so the portal reads while the pipeline writes), PostgreSQL
at scale: only the URL changes. The portal uses these same models through
Flask-SQLAlchemy (`model_class=Base`).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (no time zones) too."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime.datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} where UTC is required")
        return value.astimezone(datetime.UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime.datetime | None, dialect: Any) -> Any:
        return value.replace(tzinfo=datetime.UTC) if value is not None else None


class Base(DeclarativeBase):
    pass


class Study(Base):
    """One study on the worklist (or removed from the archive, kept for its history)."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    orthanc_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    patient_birth_date: Mapped[datetime.date | None] = mapped_column(Date)
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    study_date: Mapped[datetime.date | None] = mapped_column(Date)
    # Local wall-clock time of the modality, as DICOM gives it (no time zone).
    study_datetime: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    modality: Mapped[str] = mapped_column(String(16), default="")
    modalities: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    referring_physician: Mapped[str] = mapped_column(String(324), default="")
    institution: Mapped[str] = mapped_column(String(128), default="")
    priority: Mapped[str] = mapped_column(String(16), default="ROUTINE")
    ordered_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    received_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    ingested_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime, index=True)
    removed_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime, index=True)
    series_count: Mapped[int] = mapped_column(Integer, default=0)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)

    assignee: Mapped[User | None] = relationship()
    series: Mapped[list[Series]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="Series.series_number"
    )
    events: Mapped[list[StudyEvent]] = relationship(
        cascade="all, delete-orphan", order_by="StudyEvent.at"
    )

    # The worklist's indexes (its queries and their trade-offs: storage/worklist.py; measured
    # at a million studies by benchmarks/worklist.py). An equality filter, then status (the
    # counts per status), then received_at (the default order).
    __table_args__ = (
        Index("ix_studies_status_received", "status", "received_at"),
        Index("ix_studies_modality_status_received", "modality", "status", "received_at"),
        Index("ix_studies_assignee_status_received", "assignee_id", "status", "received_at"),
        Index("ix_studies_priority_status_received", "priority", "status", "received_at"),
        Index("ix_studies_study_date_status", "study_date", "status"),
        # The whole worklist in another order than received_at. With id, the tie-break, the
        # first also leaves ix_studies_assignee_id the narrowest-looking index to SQLite, which
        # then reads that one (2,400 pages at a million studies, not 8,600) for `count(*)`.
        Index("ix_studies_study_datetime", "study_datetime", "id"),
        Index("ix_studies_patient_name", "patient_name"),
        # The search, by case-insensitive prefix (with status, for its counts); SQLite only,
        # as is the query that uses them (`starts_with_ignoring_case` in storage/worklist.py).
        *(
            Index(
                f"ix_studies_{name}_nocase", text(f"{expression} COLLATE NOCASE"), "status"
            ).ddl_if(dialect="sqlite")
            for name, expression in (
                ("patient_name", "patient_name"),
                ("given_name", "substr(patient_name, instr(patient_name, '^') + 1)"),
                ("patient_id", "patient_id"),
                ("accession", "accession_number"),
            )
        ),
    )


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(256), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    instance_count: Mapped[int] = mapped_column(Integer, default=0)

    study: Mapped[Study] = relationship(back_populates="series")

    __table_args__ = (UniqueConstraint("study_id", "series_instance_uid"),)


class StudyEvent(Base):
    """One step in a study's life (received, assigned, opened, signed...), for its timeline
    and for turnaround analytics."""

    __tablename__ = "study_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    user_email: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[str] = mapped_column(String(512), default="")

    __table_args__ = (Index("ix_study_events_study_at", "study_id", "at"),)


class QuarantinedStudy(Base):
    """A study held back from the worklist, with every reason; kept after release or deletion."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    orthanc_id: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # open, released, deleted
    study_instance_uid: Mapped[str] = mapped_column(String(255), default="")
    patient_id: Mapped[str] = mapped_column(String(255), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    modalities: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    quarantined_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    checked_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(255))


class PipelineState(Base):
    """Small named values the pipeline keeps between runs (the `/changes` cursor)."""

    __tablename__ = "pipeline_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class IngestRetry(Base):
    """A study that failed to ingest or was still arriving; the next reconciliation retries it."""

    __tablename__ = "ingest_retries"

    orthanc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(1024))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    failed_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)


class User(Base):
    """A person who signs in to the portal; `session_version` bumps to log out everywhere."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    # For referrers: their name as DICOM writes it in Referring Physician's Name.
    dicom_name: Mapped[str] = mapped_column(String(324), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A bearer token for programs; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship()


class AuditEvent(Base):
    """Append-only trail of who did or saw what; nothing updates or deletes it."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(UtcDateTime, index=True)
    user_email: Mapped[str] = mapped_column(String(255), default="", index=True)
    role: Mapped[str] = mapped_column(String(16), default="")
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(255), default="")
    study_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # success, denied, error
    detail: Mapped[str] = mapped_column(String(1024), default="")


def create_database_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", configure_sqlite)
    return engine


def configure_sqlite(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def init_database(engine: Engine) -> None:
    """Create the tables that do not exist yet."""
    Base.metadata.create_all(engine)


@functools.cache
def get_engine(url: str) -> Engine:
    """The process's one engine (connection pool) for `url`, made and migrated on first use."""
    engine = create_database_engine(url)
    init_database(engine)
    return engine


@contextmanager
def open_session(url: str) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session, session.begin():
        yield session


class Report(Base):
    """A study's report: the working text (draft, or preliminary being revised) and its state.

    `version` grows with every save and signature: it is the ETag that keeps two editors
    from overwriting each other. `key` (random) seeds the UIDs of its SR documents.
    """

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), unique=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # draft, preliminary, final
    version: Mapped[int] = mapped_column(Integer, default=1)
    sections: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    template_key: Mapped[str] = mapped_column(String(64), default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(255), default="")

    study: Mapped[Study] = relationship()
    author: Mapped[User | None] = relationship()
    documents: Mapped[list[ReportDocument]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="ReportDocument.sequence"
    )


class ReportDocument(Base):
    """One signed version (preliminary, final or addendum), archived as one DICOM SR.

    Also the outbox: `archived_at` stays empty until the archive acknowledged the SR.
    """

    __tablename__ = "report_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # preliminary, final, addendum
    sections: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    addendum_text: Mapped[str] = mapped_column(Text, default="")
    signed_by: Mapped[str] = mapped_column(String(255))
    signer_name: Mapped[str] = mapped_column(String(324))  # DICOM PN
    signed_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    archived_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(1024), default="")

    report: Mapped[Report] = relationship(back_populates="documents")

    __table_args__ = (
        UniqueConstraint("report_id", "sequence"),
        Index("ix_report_documents_archived_at", "archived_at"),
    )


class ReportTemplate(Base):
    """Pre-filled sections for a modality and body part; seeded from core/report_templates.json,
    edited by admins."""

    __tablename__ = "report_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    modality: Mapped[str] = mapped_column(String(16), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    sections: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(255), default="")
class ImportRun(Base):
    """One import of files (command, upload page or API) with its per-file summary."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(UtcDateTime, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor: Mapped[str] = mapped_column(String(255), default="")  # e-mail or cli:login
    source: Mapped[str] = mapped_column(String(16))  # cli, portal, api
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # ImportSummary.to_json()
class ResearchExport(Base):
    """A researcher's cohort request and the export it becomes.

    `salt` keys the export's pseudonyms and new UIDs (a re-run gives the same ones); it
    never leaves the database. States: requested -> approved | rejected; approved ->
    running -> done | failed.
    """

    __tablename__ = "research_exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(2048))
    cohort: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    profile: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(1024), default="")
    decided_by: Mapped[str] = mapped_column(String(255), default="")
    requested_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    salt: Mapped[str] = mapped_column(String(64))
    total_instances: Mapped[int] = mapped_column(Integer, default=0)
    processed_instances: Mapped[int] = mapped_column(Integer, default=0)
    exported_instances: Mapped[int] = mapped_column(Integer, default=0)
    excluded_instances: Mapped[int] = mapped_column(Integer, default=0)
    withheld_instances: Mapped[int] = mapped_column(Integer, default=0)
    destination: Mapped[str] = mapped_column(String(1024), default="")
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ExportPseudonym(Base):
    """Which patient a pseudonym of an export stands for: for admins only, never exported."""

    __tablename__ = "export_pseudonyms"

    id: Mapped[int] = mapped_column(primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("research_exports.id", ondelete="CASCADE"))
    patient_key: Mapped[str] = mapped_column(String(512))
    pseudonym: Mapped[str] = mapped_column(String(64))
    shift_days: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("export_id", "patient_key"),)
