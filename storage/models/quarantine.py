"""Studies held back from the worklist by validation."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


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
    # A reported study's identity changes ({field, old, new}), for the admin's decision.
    identity_changes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    quarantined_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    checked_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(255))
