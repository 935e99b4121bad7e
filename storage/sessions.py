"""Server-side portal sessions: the signed cookie carries a random key, the row its life.

Only the key's SHA-256 is stored, so a copy of the database opens no session. Signing
out deletes the row (a copied cookie stops working); a row idle longer than the idle
timeout, or older than the absolute lifetime, is dead. The check on every request is one
primary-key lookup joined to the user; `last_seen_at` is written at most once a minute.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from storage.models.accounts import User
from storage.models.sign_in import UserSession

TOUCH_EVERY = datetime.timedelta(minutes=1)
# Built once and run without the ORM: it is every request's check, the viewer's hundreds of
# frame requests a second included.
LIVE_SESSION = (
    select(
        UserSession.created_at,
        UserSession.last_seen_at,
        User.id,
        User.email,
        User.role,
        User.active,
        User.password_temporary,
    )
    .join(User, User.id == UserSession.user_id)
    .where(UserSession.key_hash == bindparam("key_hash"))
)


@dataclass(frozen=True)
class SessionLimits:
    idle: datetime.timedelta
    lifetime: datetime.timedelta


@dataclass(frozen=True)
class LiveSession:
    """What a request needs to know about its signed-in user, without loading the user."""

    key: str
    user_id: int
    email: str
    role: str
    password_temporary: bool


def hash_session_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start_session(session: Session, user: User, now: datetime.datetime) -> str:
    """A new session for `user`; returns its random key (for the cookie, never stored)."""
    key = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            key_hash=hash_session_key(key), user_id=user.id, created_at=now, last_seen_at=now
        )
    )
    return key


def find_live_session(
    session: Session, key: str, limits: SessionLimits, now: datetime.datetime
) -> LiveSession | None:
    """The session behind a cookie's key, if it is alive; ends it when it has expired.

    One indexed lookup; a write only when the session expired or was last seen over a
    minute ago (the caller commits).
    """
    key_hash = hash_session_key(key)
    row = session.connection().execute(LIVE_SESSION, {"key_hash": key_hash}).one_or_none()
    if row is None:
        return None
    created_at, last_seen_at, user_id, email, role, active, temporary = row
    if not active or now - last_seen_at > limits.idle or now - created_at > limits.lifetime:
        session.execute(delete(UserSession).where(UserSession.key_hash == key_hash))
        return None
    if now - last_seen_at >= TOUCH_EVERY:
        session.execute(
            update(UserSession)
            .where(UserSession.key_hash == key_hash, UserSession.last_seen_at < now - TOUCH_EVERY)
            .values(last_seen_at=now)
        )
    return LiveSession(key, user_id, email, role, bool(temporary))


def end_session(session: Session, key: str) -> None:
    """Sign-out: the row goes, so the cookie (and any copy of it) opens nothing any more."""
    session.execute(delete(UserSession).where(UserSession.key_hash == hash_session_key(key)))


def end_user_sessions(session: Session, user_id: int, *, keep: str | None = None) -> None:
    """End every session of a user, except the one whose key is `keep`."""
    statement = delete(UserSession).where(UserSession.user_id == user_id)
    if keep is not None:
        statement = statement.where(UserSession.key_hash != hash_session_key(keep))
    session.execute(statement)


def purge_expired_sessions(session: Session, limits: SessionLimits, now: datetime.datetime) -> None:
    """Sessions nobody signed out of and that can no longer be used."""
    session.execute(
        delete(UserSession).where(
            (UserSession.last_seen_at < now - limits.idle)
            | (UserSession.created_at < now - limits.lifetime)
        )
    )
