"""`pacs user add|list|disable|enable|unlock|set-password`: accounts from the command line.

The first admin starts here. Every change is audited as `cli:<login>`.
"""

from __future__ import annotations

import datetime
import getpass
import sys
from typing import TextIO

from sqlalchemy.orm import Session

from config.settings import Settings
from core.accounts import Role, find_password_problems
from pacs.ingest_commands import CommandError
from storage.accounts import (
    AccountError,
    create_user,
    end_sign_ins,
    find_user,
    list_users,
    set_password,
    unlock_user,
    write_audit,
)
from storage.database import open_session
from storage.models.accounts import User
from storage.sign_in import find_throttled


def read_password(stdin: TextIO) -> str:
    """From stdin when it is not a terminal (scripts), else prompted twice."""
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise CommandError("the two passwords differ")
    return first


def read_acceptable_password(email: str) -> str:
    password = read_password(sys.stdin)
    problems = find_password_problems(password, email=email)
    if problems:
        raise CommandError(f"password refused: it {'; it '.join(problems)}")
    return password


def add_user(
    settings: Settings,
    email: str,
    role: str,
    display_name: str,
    dicom_name: str,
    out: TextIO,
    *,
    temporary: bool = False,
) -> int:
    if "@" not in email or len(email) > 255:
        raise CommandError(f"{email!r} is not an e-mail address")
    try:
        parsed_role = Role(role)
    except ValueError:
        raise CommandError(
            f"unknown role {role!r}: choose one of {', '.join(r.value for r in Role)}"
        ) from None
    password = read_acceptable_password(email)
    now = datetime.datetime.now(datetime.UTC)
    try:
        with open_session(settings.database_url) as session:
            create_user(
                session,
                email,
                password,
                parsed_role,
                now,
                display_name=display_name,
                dicom_name=dicom_name,
                temporary=temporary,
            )
            audit_change(session, "user_add", email.strip().lower(), f"role={parsed_role}", now)
    except AccountError as error:
        raise CommandError(str(error)) from None
    out.write(f"user {email.strip().lower()} added as {parsed_role}\n")
    return 0


def change_user(settings: Settings, email: str, action: str, out: TextIO) -> int:
    """disable (ends every session and token), enable, or unlock (ends the backoff)."""
    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        user = find_existing_user(session, email)
        if action == "unlock":
            unlock_user(session, user)
        else:
            user.active = action == "enable"
            if not user.active:
                end_sign_ins(session, user, now)
        audit_change(session, f"user_{action}", user.email, "", now)
    done = "unlocked" if action == "unlock" else f"{action}d"
    out.write(f"user {user.email} {done}\n")
    return 0


def change_password(settings: Settings, email: str, temporary: bool, out: TextIO) -> int:
    """A new password; every session and token of the user ends."""
    password = read_acceptable_password(email)
    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        user = find_existing_user(session, email)
        set_password(session, user, password, now, temporary=temporary)
        detail = "temporary" if temporary else ""
        audit_change(session, "user_set_password", user.email, detail, now)
    kind = "a temporary password (changed at first sign-in)" if temporary else "a new password"
    out.write(f"user {user.email} has {kind}\n")
    return 0


def find_existing_user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise CommandError(f"no user {email.strip().lower()}")
    return user


def audit_change(
    session: Session, action: str, email: str, detail: str, now: datetime.datetime
) -> None:
    write_audit(
        session,
        action=action,
        outcome="success",
        now=now,
        email=f"cli:{getpass.getuser()}",
        object_type="user",
        object_id=email,
        detail=detail,
    )


def print_users(settings: Settings, out: TextIO) -> int:
    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        users = list_users(session)
        throttled = find_throttled(session, now)
    if not users:
        out.write("no users yet: add the first admin with `pacs user add EMAIL --role admin`\n")
    for user in users:
        state = "active" if user.active else "disabled"
        if user.password_temporary:
            state += ", temporary password"
        if user.email in throttled:
            state += f", backing off until {throttled[user.email]:%H:%M:%S} UTC"
        last = f"{user.last_login_at:%Y-%m-%d %H:%M}" if user.last_login_at else "never"
        out.write(f"{user.email}\t{user.role}\t{state}\tlast login {last}\n")
    return 0
