"""Radiology reports, their signed documents (the SR outbox) and templates."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UtcDateTime

if TYPE_CHECKING:
    from storage.models.accounts import User
    from storage.models.studies import Study


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
