"""Studies on the worklist while they still arrive (PACS_WORKLIST_ARRIVING).

A table of its own rather than a column of `studies`: a row exists only while a study
arrives (seconds to minutes), and the worklist asks for the page's rows alone, so its tuned
queries and indexes stay as they are.
"""

from __future__ import annotations

import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


class StudyArrival(Base):
    """The study is listed but the archive has not called it stable (complete) yet."""

    __tablename__ = "study_arrivals"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    listed_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
