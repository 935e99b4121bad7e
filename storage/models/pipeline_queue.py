"""The pipeline's work queue, its consumers' heartbeats and the scheduled flows' turns (see
`storage/pipeline_queue.py`)."""

from __future__ import annotations

import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


class QueuedWork(Base):
    """One study to ingest (`key` = Orthanc id) or one approved export (`key` = its id)."""

    __tablename__ = "pipeline_queue"
    __table_args__ = (Index("ix_pipeline_queue_claim", "claimed_until", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    queued_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    claimed_until: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class PipelineWorker(Base):
    """A pipeline consumer, seen alive at `seen_at` (it beats every few seconds)."""

    __tablename__ = "pipeline_workers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # embedded (pacs up) or worker
    started_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    seen_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)


class FlowSchedule(Base):
    """A scheduled flow's next turn, due at `due_at`; the consumer that took the last one,
    running it since `running_since` (None once it ended)."""

    __tablename__ = "flow_schedules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    taken_by: Mapped[str | None] = mapped_column(String(128), default=None)
    running_since: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime, default=None)
