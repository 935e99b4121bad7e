"""Research export requests and the pseudonyms of their patients."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


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
