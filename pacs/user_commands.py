"""`pacs user add|list`: accounts from the command line (the first admin starts here)."""

from __future__ import annotations

import datetime
import getpass
import sys
from typing import TextIO

from config.settings import Settings
from core.accounts import Role, find_password_problems
from pacs.ingest_commands import CommandError
from storage.accounts import AccountError, create_user, list_users
from storage.database import open_session


def read_password(stdin: TextIO) -> str:
    """From stdin when it is not a terminal (scripts), else prompted twice."""
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise CommandError("the two passwords differ")
    return first


def add_user(
    settings: Settings, email: str, role: str, display_name: str, dicom_name: str, out: TextIO
) -> int:
    if "@" not in email or len(email) > 255:
        raise CommandError(f"{email!r} is not an e-mail address")
    try:
        parsed_role = Role(role)
    except ValueError:
        raise CommandError(
            f"unknown role {role!r}: choose one of {', '.join(r.value for r in Role)}"
        ) from None
    password = read_password(sys.stdin)
    problems = find_password_problems(password, email=email)
    if problems:
        raise CommandError(f"password refused: it {'; it '.join(problems)}")
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
            )
    except AccountError as error:
        raise CommandError(str(error)) from None
    out.write(f"user {email.strip().lower()} added as {parsed_role}\n")
    return 0


def print_users(settings: Settings, out: TextIO) -> int:
    with open_session(settings.database_url) as session:
        users = list_users(session)
    if not users:
        out.write("no users yet: add the first admin with `pacs user add EMAIL --role admin`\n")
    for user in users:
        state = "active" if user.active else "disabled"
        last = f"{user.last_login_at:%Y-%m-%d %H:%M}" if user.last_login_at else "never"
        out.write(f"{user.email}\t{user.role}\t{state}\tlast login {last}\n")
    return 0
