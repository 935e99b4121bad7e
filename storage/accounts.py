"""Users, API tokens and the audit trail in the operational database."""

from __future__ import annotations

import datetime
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.accounts import ACCOUNT_BACKOFF, ADDRESS_BACKOFF, Role, hash_password, verify_password
from storage.audit_chain import append_audit_event
from storage.models.accounts import ApiToken, AuditEvent, User
from storage.sessions import end_user_sessions
from storage.sign_in import (
    address_key,
    clear_failures,
    email_key,
    purge_forgotten,
    read_wait,
    record_failure,
)

TOKEN_LIFETIME = datetime.timedelta(hours=12)


class AccountError(ValueError):
    """The account operation was refused; the message says why."""


def create_user(
    session: Session,
    email: str,
    password: str,
    role: Role,
    now: datetime.datetime,
    *,
    display_name: str = "",
    dicom_name: str = "",
    temporary: bool = False,
) -> User:
    email = email.strip().lower()
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(f"a user {email} exists already")
    user = User(
        email=email,
        role=str(role),
        password_hash=hash_password(password),
        password_temporary=temporary,
        display_name=display_name,
        dicom_name=dicom_name,
        created_at=now,
        active=True,
    )
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def list_radiologists(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User).where(User.role == Role.RADIOLOGIST, User.active).order_by(User.email)
        )
    )


@dataclass(frozen=True)
class SignInResult:
    """`user` when the password matched; else why not ("throttled", "wrong")."""

    user: User | None
    problem: str = ""
    retry_after: int = 0  # seconds, when throttled


def check_sign_in(
    session: Session, email: str, password: str, address: str, now: datetime.datetime
) -> SignInResult:
    """Check a password under the backoff of its e-mail and its client address.

    An unknown e-mail, a disabled account and a wrong password take the same path: the
    same bcrypt cost (a dummy hash), the same failure counts, the same answers.
    """
    keys = [email_key(email), address_key(address)]
    wait = read_wait(session, keys, now)
    if wait:
        return SignInResult(None, "throttled", wait)
    user = find_user(session, email)
    usable = user is not None and user.active
    if verify_password(password, user.password_hash if usable else None):
        clear_failures(session, keys[0])
        user.last_login_at = now
        return SignInResult(user)
    record_failure(session, keys[0], ACCOUNT_BACKOFF, now)
    record_failure(session, keys[1], ADDRESS_BACKOFF, now)
    purge_forgotten(session, now)
    return SignInResult(None, "wrong")


def unlock_user(session: Session, user: User) -> None:
    """An admin ends the backoff of an account (its address limits stay)."""
    clear_failures(session, email_key(user.email))


def set_password(
    session: Session, user: User, password: str, now: datetime.datetime, *, temporary: bool
) -> None:
    """A new password ends every session and token of the user, and the account's backoff."""
    user.password_hash = hash_password(password)
    user.password_temporary = temporary
    unlock_user(session, user)
    end_sign_ins(session, user, now)


def set_role(session: Session, user: User, role: Role, now: datetime.datetime) -> None:
    """A new role ends every session and token: nothing keeps the old role's rights."""
    user.role = str(role)
    end_sign_ins(session, user, now)


def issue_token(session: Session, user: User, now: datetime.datetime) -> tuple[str, ApiToken]:
    """A new random bearer token; the caller shows it once, the database keeps its hash."""
    token = secrets.token_urlsafe(32)
    record = ApiToken(
        user_id=user.id,
        token_hash=hash_token(token),
        created_at=now,
        expires_at=now + TOKEN_LIFETIME,
    )
    session.add(record)
    return token, record


def find_token_user(session: Session, token: str, now: datetime.datetime) -> User | None:
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if record is None or record.revoked_at is not None or record.expires_at <= now:
        return None
    return record.user if record.user.active else None


def end_sign_ins(
    session: Session, user: User, now: datetime.datetime, *, keep_session: str | None = None
) -> None:
    """Log out everywhere: every token revoked, every session (but `keep_session`) ended."""
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    end_user_sessions(session, user.id, keep=keep_session)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write_audit(
    session: Session,
    *,
    action: str,
    outcome: str,
    now: datetime.datetime,
    user: User | None = None,
    email: str = "",
    client_ip: str = "",
    object_type: str = "",
    object_id: str = "",
    study_uid: str = "",
    detail: str = "",
) -> None:
    """Append one event to the trail, chained to the one before (see storage/audit_chain.py)."""
    append_audit_event(
        session,
        AuditEvent(
            at=now,
            user_email=user.email if user else email,
            role=user.role if user else "",
            client_ip=client_ip[:64],
            action=action,
            object_type=object_type,
            object_id=object_id[:255],
            study_uid=study_uid[:64],
            outcome=outcome,
            detail=detail[:1024],
        ),
    )


def has_audit_since(
    session: Session, email: str, action: str, study_uid: str, since: datetime.datetime
) -> bool:
    """Whether `email` already has a successful `action` on the study since `since`."""
    found = session.scalar(
        select(AuditEvent.id)
        .where(
            AuditEvent.study_uid == study_uid,
            AuditEvent.user_email == email,
            AuditEvent.action == action,
            AuditEvent.outcome == "success",
            AuditEvent.at >= since,
        )
        .limit(1)
    )
    return found is not None


def query_audit(
    session: Session,
    *,
    user: str | None = None,
    action: str | None = None,
    study_uid: str | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    page: int = 1,
    per_page: int = 100,
) -> tuple[list[AuditEvent], int]:
    """Audit events matching the filters, newest first, with their total."""
    statement = select(AuditEvent)
    if user:
        statement = statement.where(AuditEvent.user_email == user.lower())
    if action:
        statement = statement.where(AuditEvent.action == action)
    if study_uid:
        statement = statement.where(AuditEvent.study_uid == study_uid)
    if since:
        statement = statement.where(AuditEvent.at >= as_utc(since))
    if until:
        statement = statement.where(AuditEvent.at <= as_utc(until))
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    items = session.scalars(
        statement.order_by(AuditEvent.id.desc()).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return list(items), total


def as_utc(moment: datetime.datetime) -> datetime.datetime:
    """Times given without a zone are taken as UTC, the trail's own zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
