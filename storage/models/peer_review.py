"""Peer reviews of final reports (RADPEER scores, assignments, the discussion queue)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UtcDateTime

if TYPE_CHECKING:
    from storage.models.accounts import User
    from storage.models.reports import Report
    from storage.models.studies import Study


class PeerReview(Base):
    """One reviewer's review of one final report: assigned (score empty) or scored.

    One row per reviewer and report: the rule "one score per reviewer and report" is also
    the database's. `reviewee_id` is the radiologist who signed the report final.
    """

    __tablename__ = "peer_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    reviewee_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(16))  # reading, assigned
    # The study being read when the prior was scored (source `reading`).
    context_study_id: Mapped[int | None] = mapped_column(
        ForeignKey("studies.id", ondelete="SET NULL")
    )
    assigned_by: Mapped[str] = mapped_column(String(255), default="")
    assigned_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    period: Mapped[str] = mapped_column(String(7), default="")  # YYYY-MM of a random sample
    seed: Mapped[str] = mapped_column(String(64), default="")
    score: Mapped[str] = mapped_column(String(2), default="", index=True)  # "" while assigned
    comment: Mapped[str] = mapped_column(Text, default="")
    scored_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)
    discussion: Mapped[str] = mapped_column(String(8), default="", index=True)  # open, closed
    outcome: Mapped[str] = mapped_column(String(16), default="")
    outcome_score: Mapped[str] = mapped_column(String(2), default="")
    outcome_note: Mapped[str] = mapped_column(Text, default="")
    outcome_by: Mapped[str] = mapped_column(String(255), default="")
    outcome_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)

    report: Mapped[Report] = relationship()
    study: Mapped[Study] = relationship(foreign_keys=[study_id])
    reviewee: Mapped[User] = relationship(foreign_keys=[reviewee_id])
    reviewer: Mapped[User] = relationship(foreign_keys=[reviewer_id])

    __table_args__ = (
        UniqueConstraint("report_id", "reviewer_id", name="uq_peer_reviews_report_reviewer"),
        Index("ix_peer_reviews_period", "period"),
    )
