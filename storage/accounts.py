"""Users, API tokens and the audit trail in the operational database."""

from __future__ import annotations

import datetime
import hashlib
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.accounts import Role, hash_password, lock_until_after_failure, verify_password
from storage.models.accounts import ApiToken, AuditEvent, User

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
) -> User:
    email = email.strip().lower()
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(f"a user {email} exists already")
    user = User(
        email=email,
        role=str(role),
        password_hash=hash_password(password),
        display_name=display_name,
        dicom_name=dicom_name,
        created_at=now,
        active=True,
        failed_logins=0,
        session_version=1,
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


def check_sign_in(
    session: Session, email: str, password: str, now: datetime.datetime
) -> tuple[User | None, str]:
    """(user, "") on success, else (user or None, reason); counts failures and locks."""
    user = find_user(session, email)
    if user is None or not user.active:
        hash_password("x" * 12)  # same cost as a real check: no user enumeration by timing
        return None, "unknown user or wrong password"
    if user.locked_until is not None and user.locked_until > now:
        return user, "locked"
    if not verify_password(password, user.password_hash):
        user.failed_logins += 1
        user.locked_until = lock_until_after_failure(user.failed_logins, now)
        return user, "locked" if user.locked_until else "unknown user or wrong password"
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    return user, ""


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


def revoke_tokens(session: Session, user: User, now: datetime.datetime) -> None:
    """Log out everywhere: every token revoked, every session cookie made stale."""
    for record in session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        record.revoked_at = now
    user.session_version += 1


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
    session.add(
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
        )
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
