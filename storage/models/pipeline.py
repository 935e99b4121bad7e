"""The pipeline's own state between runs: the change cursor and the studies to retry."""

from __future__ import annotations

import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


class PipelineState(Base):
    """Small named values the pipeline keeps between runs (the `/changes` cursor)."""

    __tablename__ = "pipeline_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class IngestRetry(Base):
    """A study that failed to ingest or was still arriving; the next reconciliation retries it."""

    __tablename__ = "ingest_retries"

    orthanc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(1024))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    failed_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
