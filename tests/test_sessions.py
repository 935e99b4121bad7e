"""Portal sessions live on the server: renewed at sign-in, ended by sign-out, idle time,
the absolute lifetime, and a new password or role. Time is injected, never slept."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from portal.extensions import db
from portal.security import load_session_user
from storage.models.accounts import User
from storage.models.sign_in import UserSession
from storage.sessions import hash_session_key
from tests.support.accounts import ADMIN_PASSWORD, NOW, bearer, form_post, make_portal, sign_in
from tests.support.clock import stop_clock

MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    yield make_portal(tmp_path, PACS_DATABASE_URL=database_url)


def session_key_of(app: Flask, client: FlaskClient) -> str:
    """The random key the signed cookie carries."""
    cookie = client.get_cookie("session").value
    return app.session_interface.get_signing_serializer(app).loads(cookie)["_user_id"]


def copy_cookie(app: Flask, source: FlaskClient) -> FlaskClient:
    thief = app.test_client()
    thief.set_cookie("session", source.get_cookie("session").value)
    return thief


def is_signed_in(client: FlaskClient) -> bool:
    answer = client.get("/worklist")
    assert answer.status_code in (200, 302)
    return answer.status_code == 200


def test_sign_in_renews_the_session_so_a_planted_cookie_stays_anonymous(app: Flask) -> None:
    attacker = app.test_client()
    attacker.get("/login")  # a pre-sign-in session (its CSRF token) the attacker plants
    victim = copy_cookie(app, attacker)
    sign_in(victim)
    assert victim.get_cookie("session").value != attacker.get_cookie("session").value
    assert not is_signed_in(attacker)
    assert is_signed_in(victim)
    again = app.test_client()
    sign_in(again)
    assert session_key_of(app, again) != session_key_of(app, victim), "a new key every time"
    with app.app_context():
        stored = db.session.scalars(select(UserSession.key_hash)).all()
    assert hash_session_key(session_key_of(app, victim)) in stored
    assert session_key_of(app, victim) not in stored, "only the key's hash is kept"


def test_a_copied_cookie_stops_working_at_sign_out(app: Flask) -> None:
    browser = app.test_client()
    sign_in(browser)
    thief = copy_cookie(app, browser)
    assert is_signed_in(thief)
    assert form_post(browser, "/worklist", "/logout", {}).status_code == 302
    assert not is_signed_in(thief)
    assert thief.get("/api/v1/studies").status_code == 401
    with app.app_context():
        assert db.session.scalars(select(UserSession)).all() == []


def test_an_idle_session_ends(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    stop_clock(monkeypatch, NOW)
    browser = app.test_client()
    sign_in(browser)
    moment = NOW
    for _ in range(3):  # in use every 29 minutes: alive
        moment += 29 * MINUTE
        stop_clock(monkeypatch, moment)
        assert is_signed_in(browser)
    stop_clock(monkeypatch, moment + 31 * MINUTE)
    assert not is_signed_in(browser)
    with app.app_context():
        assert db.session.scalars(select(UserSession)).all() == [], "the expired row is gone"


def test_no_session_outlives_its_absolute_lifetime(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_clock(monkeypatch, NOW)
    browser = app.test_client()
    sign_in(browser)
    moment = NOW
    while moment < NOW + datetime.timedelta(hours=11, minutes=40):
        moment += 20 * MINUTE
        stop_clock(monkeypatch, moment)
        assert is_signed_in(browser), moment
    stop_clock(monkeypatch, NOW + datetime.timedelta(hours=12, minutes=1))
    assert not is_signed_in(browser)


def test_the_limits_come_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_portal(tmp_path, PACS_SESSION_IDLE_MINUTES="5", PACS_SESSION_MAX_HOURS="1")
    stop_clock(monkeypatch, NOW)
    idle, busy = app.test_client(), app.test_client()
    sign_in(idle)
    sign_in(busy)
    for minutes in (4, 8, 12):
        stop_clock(monkeypatch, NOW + minutes * MINUTE)
        assert is_signed_in(busy)
    assert not is_signed_in(idle)
    stop_clock(monkeypatch, NOW + 61 * MINUTE)
    assert not is_signed_in(busy)


def test_the_session_check_is_one_lookup_and_writes_at_most_once_a_minute(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the viewer's hundreds of frame requests pay: one SELECT, an UPDATE a minute."""
    stop_clock(monkeypatch, NOW)
    browser = app.test_client()
    sign_in(browser)
    key = session_key_of(app, browser)
    statements: list[str] = []
    with app.test_request_context():
        event.listen(db.engine, "before_cursor_execute", record_statement(statements))
        for seconds in (10, 30, 59):
            stop_clock(monkeypatch, NOW + datetime.timedelta(seconds=seconds))
            assert load_session_user(key).email == "alice@example.org"
        assert [s.split()[0] for s in statements] == ["SELECT"] * 3
        stop_clock(monkeypatch, NOW + 61 * datetime.timedelta(seconds=1))
        statements.clear()
        assert load_session_user(key) is not None
        assert [s.split()[0] for s in statements] == ["SELECT", "UPDATE"]
        stored = db.session.get(UserSession, hash_session_key(key), populate_existing=True)
        assert stored.last_seen_at == NOW + datetime.timedelta(seconds=61)
        assert load_session_user("not-a-session-key") is None


def record_statement(statements: list[str]):
    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement.strip())

    return record


def test_a_new_role_ends_sessions_and_tokens(app: Flask) -> None:
    alice_browser, alice_program, admin = app.test_client(), app.test_client(), app.test_client()
    sign_in(alice_browser)
    token = bearer(alice_program)
    sign_in(admin, "admin@example.org", ADMIN_PASSWORD)
    with app.app_context():
        alice_id = db.session.scalar(select(User.id).where(User.email == "alice@example.org"))
    answer = form_post(admin, "/admin/users", f"/admin/users/{alice_id}/role", {"role": "referrer"})
    assert answer.status_code == 302
    assert not is_signed_in(alice_browser)
    assert alice_program.get("/api/v1/studies", headers=token).status_code == 401
    sign_in(alice_browser)
    assert alice_browser.get("/worklist").status_code == 403, "the new role, not the old"
    assert is_signed_in(admin), "the admin's own session is untouched"
    refused = form_post(admin, "/admin/users", "/admin/users/2/role", {"role": "referrer"})
    assert "another admin changes its role" in admin.get(refused.location).get_data(as_text=True)


def test_sign_out_everywhere_ends_every_session_and_token(app: Flask) -> None:
    first, second, program = app.test_client(), app.test_client(), app.test_client()
    sign_in(first)
    sign_in(second)
    token = bearer(program)
    assert form_post(first, "/worklist", "/logout-everywhere", {}).status_code == 302
    assert not is_signed_in(first) and not is_signed_in(second)
    assert program.get("/api/v1/studies", headers=token).status_code == 401


def test_abandoned_sessions_are_purged_and_a_second_sign_in_replaces_the_first(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_clock(monkeypatch, NOW)
    abandoned, browser = app.test_client(), app.test_client()
    sign_in(abandoned)  # never signs out
    sign_in(browser)
    first_key = session_key_of(app, browser)
    sign_in(browser)
    with app.app_context():
        assert len(db.session.scalars(select(UserSession)).all()) == 2
        assert db.session.get(UserSession, hash_session_key(first_key)) is None
    stop_clock(monkeypatch, NOW + 31 * MINUTE)
    sign_in(app.test_client())
    with app.app_context():
        assert len(db.session.scalars(select(UserSession)).all()) == 1, "only the new one"
