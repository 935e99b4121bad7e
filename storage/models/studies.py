"""Studies on the worklist, their series and the events of their life."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UtcDateTime

if TYPE_CHECKING:
    from storage.models.accounts import User


class StudyTotal(Base):
    """How many rows `studies` holds, in one row (id 1) kept by the database's triggers
    (revision 0010_study_totals): the worklist's counts without counting the table."""

    __tablename__ = "study_totals"

    id: Mapped[int] = mapped_column(primary_key=True)
    studies: Mapped[int] = mapped_column(BigInteger)


class ModalityTotal(Base):
    """How many rows of `studies` have each modality, kept by the database's triggers
    (revision 0012_modality_totals): a modality's counts without counting its studies."""

    __tablename__ = "modality_totals"

    modality: Mapped[str] = mapped_column(String(16), primary_key=True)
    studies: Mapped[int] = mapped_column(BigInteger)


class Study(Base):
    """One study on the worklist (or removed from the archive, kept for its history)."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    orthanc_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
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
    # The first and last image times (local wall clock): the exam's span without an MPPS.
    first_instance_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    last_instance_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    received_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    ingested_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime, index=True)
    removed_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime, index=True)
    series_count: Mapped[int] = mapped_column(Integer, default=0)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Identity values an admin decided on after reporting (column -> DICOM texts): seen
    # again, they do not quarantine the study again (core/identity.py).
    identity_acknowledged: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
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
        # PostgreSQL's default page, all statuses newest first: walked backwards, the first
        # 50 rows are the page (it cannot merge the status ranges of the composite indexes
        # as SQLite does, and sorted the whole table: 50 ms at 100,000 studies). Not on
        # SQLite, whose planner, without statistics, would take it for the filtered pages.
        Index("ix_studies_received_id", "received_at", "id").ddl_if(dialect="postgresql"),
        Index("ix_studies_patient_name", "patient_name"),
        # A patient's priors (storage/priors.py), newest first.
        Index("ix_studies_patient_issuer_date", "patient_id", "issuer_of_patient_id", "study_date"),
        # The search, by case-insensitive prefix (with status, for its counts), on SQLite
        # (the query that uses them: `starts_with_ignoring_case` in storage/worklist.py).
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
        # The same on PostgreSQL (revision 0006): lower() in bytewise order, a range of which
        # is a case-insensitive prefix, index-served even with a bound parameter. With the id
        # and the column (0013), a search's counts read the indexes alone.
        *(
            Index(
                f"ix_studies_{name}_lower",
                text(f'lower({expression}) COLLATE "C"'),
                "status",
                postgresql_include=["id", column],
            ).ddl_if(dialect="postgresql")
            for name, expression, column in (
                ("patient_name", "patient_name", "patient_name"),
                (
                    "given_name",
                    "substr(patient_name, strpos(patient_name, '^') + 1)",
                    "patient_name",
                ),
                ("patient_id", "patient_id", "patient_id"),
                ("accession", "accession_number", "accession_number"),
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
