"""Failed sign-ins per e-mail and per client address, for the backoff (no hard lock).

One row per key ("email:..." or "address:..."). The count grows in one atomic upsert, so
concurrent failures are never lost; rows whose last failure is older than FAILURE_MEMORY
count as empty and are purged.
"""

from __future__ import annotations

import datetime
import math

from sqlalchemy import case, delete, select
from sqlalchemy.orm import Session

from core.accounts import FAILURE_MEMORY, Backoff
from storage.database import dialect_insert
from storage.models.sign_in import SignInThrottle


def email_key(email: str) -> str:
    return f"email:{email.strip().lower()[:255]}"


def address_key(address: str) -> str:
    return f"address:{address[:64]}"


def read_wait(session: Session, keys: list[str], now: datetime.datetime) -> int:
    """Seconds until the keys may try again (0: now)."""
    until = session.scalar(
        select(SignInThrottle.blocked_until)
        .where(SignInThrottle.key.in_(keys), SignInThrottle.blocked_until > now)
        .order_by(SignInThrottle.blocked_until.desc())
        .limit(1)
    )
    return math.ceil((until - now).total_seconds()) if until else 0


def record_failure(session: Session, key: str, backoff: Backoff, now: datetime.datetime) -> int:
    """Count one failure for `key` atomically and start its backoff; returns the count."""
    forgotten = now - FAILURE_MEMORY
    statement = dialect_insert(session)(SignInThrottle).values(
        key=key, failures=1, last_failure_at=now, blocked_until=None
    )
    statement = statement.on_conflict_do_update(
        index_elements=[SignInThrottle.key],
        set_={
            "failures": case(
                (SignInThrottle.last_failure_at < forgotten, 1),
                else_=SignInThrottle.failures + 1,
            ),
            "last_failure_at": now,
        },
    ).returning(SignInThrottle.failures)
    failures = session.execute(statement).scalar_one()
    wait = backoff.wait_after(failures)
    if wait:
        # The row stays locked (PostgreSQL) or the database write-locked (SQLite) until the
        # transaction ends: no concurrent failure can set an older wait over this one.
        row = session.get(SignInThrottle, key, populate_existing=True, with_for_update=True)
        row.blocked_until = now + wait
    return failures


def clear_failures(session: Session, key: str) -> None:
    """Forget the failures of `key` (a successful sign-in, an admin's unlock)."""
    session.execute(delete(SignInThrottle).where(SignInThrottle.key == key))


def purge_forgotten(session: Session, now: datetime.datetime) -> None:
    """Rows whose failures are forgotten and whose wait is over: nothing left to remember."""
    session.execute(
        delete(SignInThrottle).where(
            SignInThrottle.last_failure_at < now - FAILURE_MEMORY,
            (SignInThrottle.blocked_until.is_(None)) | (SignInThrottle.blocked_until <= now),
        )
    )


def find_throttled(session: Session, now: datetime.datetime) -> dict[str, datetime.datetime]:
    """E-mails currently waiting out a backoff, with when it ends (for the users page)."""
    rows = session.execute(
        select(SignInThrottle.key, SignInThrottle.blocked_until).where(
            SignInThrottle.key.startswith("email:"), SignInThrottle.blocked_until > now
        )
    )
    return {key.removeprefix("email:"): until for key, until in rows}
