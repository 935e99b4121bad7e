"""Sign-in state: recent failures per e-mail and address (the backoff), live portal sessions."""

from __future__ import annotations

import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


class SignInThrottle(Base):
    """Recent failed sign-ins of one e-mail (known or not) or one client address."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime, index=True)
    # No attempt is checked before this time; it answers 429 with Retry-After.
    blocked_until: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime)


class UserSession(Base):
    """One signed-in browser."""

    __tablename__ = "user_sessions"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)
