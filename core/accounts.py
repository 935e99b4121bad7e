"""Roles, password rules and hashing, and sign-in throttling: account policy without I/O."""

from __future__ import annotations

import datetime
from enum import StrEnum

import bcrypt

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further
LOCK_AFTER_FAILURES = 5
LOCK_MINUTES = 15


class Role(StrEnum):
    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    REFERRER = "referrer"
    MANAGER = "manager"
    RESEARCHER = "researcher"


def find_password_problems(password: str, *, email: str = "") -> list[str]:
    """Why a password is refused; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        problems.append(f"must have at most {MAX_PASSWORD_BYTES} bytes")
    if len(set(password)) < 5:
        problems.append("must have at least 5 different characters")
    local_part = email.split("@")[0].lower()
    if len(local_part) >= 3 and local_part in password.lower():
        problems.append("must not contain the e-mail name")
    return problems


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=12)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:  # malformed hash or password over bcrypt's limit
        return False


def lock_until_after_failure(failures: int, now: datetime.datetime) -> datetime.datetime | None:
    """After LOCK_AFTER_FAILURES consecutive failures the account locks for a while."""
    if failures >= LOCK_AFTER_FAILURES:
        return now + datetime.timedelta(minutes=LOCK_MINUTES)
    return None


ALL_ROLES = tuple(Role)
WORKLIST_ROLES = (Role.RADIOLOGIST, Role.ADMIN)
# Who may read a study's images and final report (a referrer only their own patients').
CLINICAL_READERS = (Role.RADIOLOGIST, Role.ADMIN, Role.REFERRER)
ANALYTICS_ROLES = (Role.MANAGER, Role.ADMIN)
