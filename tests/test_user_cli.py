"""`pacs user add|disable|enable|unlock|set-password|list` against a real database and portal."""

from __future__ import annotations

import datetime
from pathlib import Path

from sqlalchemy import select

from config.settings import load_settings
from core.accounts import ACCOUNT_BACKOFF
from portal import create_app
from storage.database import open_session
from storage.models.accounts import AuditEvent, User
from storage.models.sign_in import SignInThrottle
from storage.sign_in import email_key, record_failure
from tests.support.accounts import ask_token, bearer, post_login
from tests.support.services import make_env, run_pacs

EMAIL = "carol@example.org"
FIRST = "a-first-passphrase"
SECOND = "another-passphrase-22"


def test_user_commands_manage_an_account_end_to_end(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    settings = load_settings(env)
    added = run_pacs(env, "user", "add", EMAIL, "--role", "radiologist", stdin=FIRST + "\n")
    assert added.returncode == 0, added.stderr
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    client = app.test_client()
    token = bearer(client, EMAIL, FIRST)  # a password from stdin is the user's own: usable at once

    disabled = run_pacs(env, "user", "disable", EMAIL)
    assert (disabled.returncode, disabled.stdout) == (0, f"user {EMAIL} disabled\n")
    assert client.get("/api/v1/studies", headers=token).status_code == 401, "tokens end"
    assert ask_token(client, EMAIL, FIRST).status_code == 401
    assert run_pacs(env, "user", "enable", EMAIL).returncode == 0
    assert ask_token(client, EMAIL, FIRST).status_code == 201

    with open_session(settings.database_url) as session:
        for _ in range(12):  # a wait of 128 s: longer than the commands below take
            record_failure(session, email_key(EMAIL), ACCOUNT_BACKOFF, now())
    assert ask_token(client, EMAIL, FIRST).status_code == 429
    assert "backing off until" in run_pacs(env, "user", "list").stdout
    assert run_pacs(env, "user", "unlock", EMAIL).stdout == f"user {EMAIL} unlocked\n"
    assert ask_token(client, EMAIL, FIRST).status_code == 201
    with open_session(settings.database_url) as session:
        assert session.get(SignInThrottle, email_key(EMAIL)) is None

    temporary = run_pacs(env, "user", "set-password", EMAIL, "--temporary", stdin=SECOND + "\n")
    assert temporary.returncode == 0, temporary.stderr
    assert "temporary password" in temporary.stdout
    assert ask_token(client, EMAIL, FIRST).status_code == 401
    assert ask_token(client, EMAIL, SECOND).status_code == 403
    assert "temporary password" in run_pacs(env, "user", "list").stdout
    browser = app.test_client()
    assert post_login(browser, EMAIL, SECOND).location.startswith("/account/password")

    own = run_pacs(env, "user", "set-password", EMAIL, stdin=FIRST + "\n")
    assert own.returncode == 0 and own.stdout == f"user {EMAIL} has a new password\n"
    assert browser.get("/worklist").status_code == 302, "the sessions ended with the password"
    assert ask_token(client, EMAIL, FIRST).status_code == 201

    with open_session(settings.database_url) as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.user_email.startswith("cli:"))
        ).all()
    assert actions == [
        "user_add",
        "user_disable",
        "user_enable",
        "user_unlock",
        "user_set_password",
        "user_set_password",
    ]
    assert run_pacs(env, "audit", "verify").returncode == 0


def test_user_commands_refuse_bad_input_in_one_line(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    assert (
        run_pacs(env, "user", "add", EMAIL, "--role", "admin", stdin=FIRST + "\n").returncode == 0
    )
    for args, stdin, reason in (
        (("user", "unlock", "who@example.org"), "", "no user who@example.org"),
        (("user", "set-password", EMAIL), "short\n", "password refused"),
        (("user", "set-password", EMAIL), "é" * 40 + "\n", "at most 72 bytes"),
        (("user", "add", "dan@example.org", "--role", "admin", "--temporary"), "", "password"),
    ):
        result = run_pacs(env, *args, stdin=stdin)
        assert result.returncode == 1, args
        assert len(result.stderr.strip().splitlines()) == 1 and reason in result.stderr, (
            result.stderr
        )
    added = run_pacs(
        env, "user", "add", "dan@example.org", "--role", "admin", "--temporary", stdin=SECOND + "\n"
    )
    assert added.returncode == 0
    with open_session(load_settings(env).database_url) as session:
        dan = session.scalar(select(User).where(User.email == "dan@example.org"))
        assert dan.password_temporary


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
