"""Roles, password rules and hashing, and sign-in throttling: account policy without I/O."""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from enum import StrEnum

import bcrypt

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_BYTES = 72  # bcrypt 5 raises beyond this: checked before hashing
BCRYPT_ROUNDS = 12
# A failure is forgotten this long after the last one: the counter starts again at zero.
FAILURE_MEMORY = datetime.timedelta(minutes=15)


@dataclass(frozen=True)
class Backoff:
    """How failed sign-ins slow down one key (an e-mail, a client address).

    The first `free` failures cost nothing; each further one doubles the wait, up to
    `longest`. There is no hard lock: the wait never exceeds `longest`, whoever causes it.
    """

    free: int
    longest: datetime.timedelta

    def wait_after(self, failures: int) -> datetime.timedelta:
        if failures < self.free:
            return datetime.timedelta(0)
        seconds = 2 ** min(failures - self.free, 20)
        return min(datetime.timedelta(seconds=seconds), self.longest)


ACCOUNT_BACKOFF = Backoff(free=5, longest=datetime.timedelta(minutes=5))
# One address may try many accounts (a hospital's NAT): a wider allowance, a longer wait.
ADDRESS_BACKOFF = Backoff(free=30, longest=datetime.timedelta(minutes=15))


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
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether `password` matches; the same bcrypt cost whatever the input.

    Without a hash (unknown e-mail) or with a password bcrypt cannot take (over 72
    bytes), a dummy hash is checked instead, so that the answer takes as long.
    """
    usable = len(password.encode()) <= MAX_PASSWORD_BYTES
    if password_hash is None or not usable:
        bcrypt.checkpw(b"not the password", dummy_password_hash())
        return False
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:  # a malformed stored hash
        return False


@functools.cache
def dummy_password_hash() -> bytes:
    """A hash of the real cost that no password matches (made once per process)."""
    return bcrypt.hashpw(b"dummy password for unknown e-mails", bcrypt.gensalt(BCRYPT_ROUNDS))


ALL_ROLES = tuple(Role)
WORKLIST_ROLES = (Role.RADIOLOGIST, Role.ADMIN)
# Who may read a study's images and final report (a referrer only their own patients').
CLINICAL_READERS = (Role.RADIOLOGIST, Role.ADMIN, Role.REFERRER)
ANALYTICS_ROLES = (Role.MANAGER, Role.ADMIN)
