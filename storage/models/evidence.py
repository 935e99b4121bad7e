"""A study's evidence for its report SRs, recorded at ingestion: the header the SR repeats
and every image instance's UIDs and class (see core/evidence.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class EvidenceHeader(Base):
    """The patient and study attributes, as DICOM text, that a report SR of the study copies."""

    __tablename__ = "evidence_headers"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    header: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EvidenceItem(Base):
    """One image instance of a study (documents and annotations are not evidence)."""

    __tablename__ = "evidence_instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("study_id", "sop_instance_uid"),
        Index("ix_evidence_instances_study_series", "study_id", "series_instance_uid"),
    )
