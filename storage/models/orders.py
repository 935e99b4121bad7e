"""Orders from the hospital, the HL7 messages that brought them, and the ORU^R01 results
outbox (queries: storage/orders.py)."""

from __future__ import annotations

import datetime

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.records import Priority
from storage.models.base import Base, UtcDateTime
from storage.models.studies import Study


class Order(Base):
    """A requested procedure with its (one) scheduled procedure step, as the HIS placed it."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    placer_order_number: Mapped[str] = mapped_column(String(64), unique=True)
    filler_order_number: Mapped[str] = mapped_column(String(64), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    requested_procedure_id: Mapped[str] = mapped_column(String(64), default="")
    scheduled_step_id: Mapped[str] = mapped_column(String(64), default="")
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    scheduled_station_aet: Mapped[str] = mapped_column(String(16), default="")
    scheduled_station_name: Mapped[str] = mapped_column(String(64), default="")
    # HL7 and DICOM times are the department's wall clock (no time zone), as in studies.
    scheduled_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    ordered_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    procedure_code: Mapped[str] = mapped_column(String(64), default="")
    procedure_scheme: Mapped[str] = mapped_column(String(32), default="")
    procedure_text: Mapped[str] = mapped_column(String(256), default="")
    priority: Mapped[str] = mapped_column(String(16), default=Priority.ROUTINE)
    reason: Mapped[str] = mapped_column(String(512), default="")
    referring_physician: Mapped[str] = mapped_column(String(324), default="")
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_id_issuer: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_birth_date: Mapped[datetime.date | None] = mapped_column(Date)
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[str] = mapped_column(String(16))
    status_changed_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    mpps_uid: Mapped[str | None] = mapped_column(String(64), unique=True)
    exam_started_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    exam_ended_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("studies.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)

    study: Mapped[Study | None] = relationship()

    # The Modality Worklist's queries: open orders by day, by modality and station.
    __table_args__ = (
        Index("ix_orders_status_scheduled", "status", "scheduled_at"),
        Index("ix_orders_modality_status_scheduled", "modality", "status", "scheduled_at"),
        Index(
            "ix_orders_station_status_scheduled", "scheduled_station_aet", "status", "scheduled_at"
        ),
    )


class Hl7Message(Base):
    """One HL7 message as received (its bytes), with the answer it got.

    `dedup_key` (sender, facility, control id) is set on accepted messages only: a repeat
    is answered from it without being applied again; a rejected one may be sent again.
    """

    __tablename__ = "hl7_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime, index=True)
    peer: Mapped[str] = mapped_column(String(64), default="")
    message_type: Mapped[str] = mapped_column(String(16), default="")
    control_id: Mapped[str] = mapped_column(String(64), default="")
    sending_application: Mapped[str] = mapped_column(String(64), default="")
    sending_facility: Mapped[str] = mapped_column(String(64), default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64), default="")
    ack_code: Mapped[str] = mapped_column(String(2))
    ack_text: Mapped[str] = mapped_column(String(256), default="")
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class ResultMessage(Base):
    """The ORU^R01 outbox: one row per final report or addendum of an ordered study.

    `sent_at` stays empty until the hospital acknowledged it (AA/CA); its control id is fixed
    when the row is made, so a resend after a lost ACK is recognisably the same message.
    """

    __tablename__ = "result_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_document_id: Mapped[int] = mapped_column(
        ForeignKey("report_documents.id", ondelete="CASCADE"), unique=True
    )
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    control_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")

    order: Mapped[Order] = relationship()
