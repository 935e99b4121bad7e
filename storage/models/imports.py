"""Imports of files (command, upload page, API) with their summaries."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


class ImportRun(Base):
    """One import of files (command, upload page or API) with its per-file summary."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(UtcDateTime, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor: Mapped[str] = mapped_column(String(255), default="")  # e-mail or cli:login
    source: Mapped[str] = mapped_column(String(16))  # cli, portal, api
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # ImportSummary.to_json()
