"""Critical results: the flag on a signed report, its communications and escalations, and the
webhook outbox towards the paging system."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UtcDateTime

if TYPE_CHECKING:
    from storage.models.reports import Report
    from storage.models.studies import Study


class CriticalResult(Base):
    """A report flagged critical at signing (one per report: the first flag stands).

    Open until acknowledged (by the referrer in the portal, or a telephone communication
    with read-back); escalated once when `due_at` passes unacknowledged.
    """

    __tablename__ = "critical_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    report_id: Mapped[int] = mapped_column(
        ForeignKey("reports.id", ondelete="CASCADE"), unique=True
    )
    category: Mapped[str] = mapped_column(String(16))
    flagged_by: Mapped[str] = mapped_column(String(255))
    flagged_by_name: Mapped[str] = mapped_column(String(324))  # DICOM PN
    flagged_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    document_sequence: Mapped[int] = mapped_column(Integer)  # the signature that flagged it
    due_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    acknowledged_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str] = mapped_column(String(255), default="")
    escalated_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)

    study: Mapped[Study] = relationship()
    report: Mapped[Report] = relationship()
    communications: Mapped[list[CriticalCommunication]] = relationship(
        back_populates="result",
        cascade="all, delete-orphan",
        order_by="CriticalCommunication.communicated_at",
    )

    # The escalation scan: open (unacknowledged, not yet escalated) results by deadline.
    __table_args__ = (
        Index("ix_critical_results_open", "acknowledged_at", "escalated_at", "due_at"),
    )


class CriticalCommunication(Base):
    """A telephone communication the radiologist documented: who, when, read-back."""

    __tablename__ = "critical_communications"

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(
        ForeignKey("critical_results.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(128))
    communicated_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    read_back: Mapped[bool] = mapped_column(Boolean)
    recorded_by: Mapped[str] = mapped_column(String(255))
    recorded_by_name: Mapped[str] = mapped_column(String(324))  # DICOM PN
    recorded_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)

    result: Mapped[CriticalResult] = relationship(back_populates="communications")


class CriticalNotification(Base):
    """One escalation message for the webhook (the outbox): retried until it is delivered."""

    __tablename__ = "critical_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(
        ForeignKey("critical_results.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(String(1024), default="")

    __table_args__ = (
        Index("ix_critical_notifications_pending", "delivered_at", "next_attempt_at"),
    )
