"""Teaching cases: de-identified copies of chosen series with their teaching text."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UtcDateTime

if TYPE_CHECKING:
    from storage.models.accounts import User
    from storage.models.studies import Study


class TeachingCase(Base):
    """One case of the teaching collection.

    The copy lives in the archive (or the research Orthanc, `location`) under its own UIDs
    (`copy_study_uid`), made from `salt` (secret: with it the copy's UIDs follow from the
    source's, so a copy made again replaces itself). `source_study_id` links the case to the
    patient: admins alone ever see it.
    """

    __tablename__ = "teaching_cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    diagnosis: Mapped[str] = mapped_column(String(200), default="")
    findings: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(String(500), default="")  # ", "-joined, lower case
    difficulty: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    source_study_id: Mapped[int | None] = mapped_column(
        ForeignKey("studies.id", ondelete="SET NULL")
    )
    source_series_uids: Mapped[list[str]] = mapped_column(JSON, default=list)
    salt: Mapped[str] = mapped_column(String(64))
    copy_study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    copy_orthanc_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    location: Mapped[str] = mapped_column(String(16))  # archive, research
    state: Mapped[str] = mapped_column(String(16), index=True)  # copying, ready, failed
    instances: Mapped[int] = mapped_column(Integer, default=0)
    left_out: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(String(1024), default="")
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)

    author: Mapped[User] = relationship()
    source_study: Mapped[Study | None] = relationship()
