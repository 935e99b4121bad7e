"""Sign-in that cannot be turned against users: backoff instead of a lock, no enumeration.

A real portal on a real database with real bcrypt; time is injected, never slept.
"""

from __future__ import annotations

import datetime
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.accounts import ACCOUNT_BACKOFF, ADDRESS_BACKOFF, Backoff
from portal.extensions import db
from storage.accounts import write_audit
from storage.models.accounts import ApiToken, AuditEvent, User
from storage.models.sign_in import SignInThrottle
from storage.sign_in import email_key, record_failure
from tests.support.accounts import (
    ADMIN_PASSWORD,
    NOW,
    PASSWORD,
    ask_token,
    bearer,
    csrf_token_of,
    form_post,
    make_portal,
    post_login,
    sign_in,
)
from tests.support.clock import stop_clock

ALICE = "alice@example.org"
NOBODY = "nobody@example.org"
# Over bcrypt's 72 bytes: 40 characters, 80 bytes (bcrypt 5 raises on it if ever hashed).
LONG = "é" * 40


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    yield make_portal(tmp_path, PACS_DATABASE_URL=database_url)


def forget_failures(app: Flask) -> None:
    with app.app_context():
        db.session.execute(delete(SignInThrottle))
        db.session.commit()


def failures_of(app: Flask, key: str) -> int:
    with app.app_context():
        row = db.session.get(SignInThrottle, key)
        return row.failures if row else 0


def test_real_and_unknown_emails_answer_alike_in_equal_time(app: Flask) -> None:
    """Same codes, same time (medians of five within 20%), short or over 72 bytes."""
    client = app.test_client()
    cases = [(email, password) for email in (ALICE, NOBODY) for password in ("wrong-pass-1", LONG)]
    timings: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for _ in range(5):
        for case in cases:  # interleaved: a burst of load hits every case alike
            forget_failures(app)
            started = time.perf_counter()
            response = ask_token(client, *case)
            timings[case].append(time.perf_counter() - started)
            assert response.status_code == 401, (case, response.json)
            assert response.json["error"] == "unknown e-mail or wrong password"
    medians = {case: statistics.median(times) for case, times in timings.items()}
    for password in ("wrong-pass-1", LONG):
        real, unknown = medians[(ALICE, password)], medians[(NOBODY, password)]
        assert abs(real - unknown) / max(real, unknown) < 0.2, (len(password), real, unknown)


@pytest.mark.parametrize("email", [ALICE, NOBODY], ids=["real", "unknown"])
@pytest.mark.parametrize(
    "password", ["wrong-pass-1", LONG, PASSWORD + "x" * 60], ids=["short", "80-bytes", "own+60"]
)
def test_the_form_and_the_token_refuse_alike(app: Flask, email: str, password: str) -> None:
    """Over 72 bytes is refused, never truncated (alice's own password + 60 bytes) nor a 500."""
    client = app.test_client()
    assert ask_token(client, email, password).status_code == 401
    form = post_login(client, email, password)
    assert form.status_code == 401
    assert "Unknown e-mail or wrong password." in form.get_data(as_text=True)


def test_the_account_backs_off_more_with_each_failure_and_answers_429(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    stop_clock(monkeypatch, NOW)
    assert [ask_token(client, ALICE, "wrong-pass-1").status_code for _ in range(5)] == [401] * 5
    throttled = ask_token(client, ALICE, PASSWORD)
    assert throttled.status_code == 429, "the backoff holds for the right password too"
    assert throttled.headers["Retry-After"] == "1"
    assert "try again in 1 seconds" in throttled.json["error"]
    form = post_login(client, ALICE, PASSWORD)
    assert form.status_code == 429 and form.headers["Retry-After"] == "1"
    assert "Too many failed sign-ins" in form.get_data(as_text=True)

    moment = NOW
    for wait in (2, 4, 8):  # each further failure doubles the wait
        moment += datetime.timedelta(seconds=wait // 2)
        stop_clock(monkeypatch, moment)
        assert ask_token(client, ALICE, "wrong-pass-1").status_code == 401
        again = ask_token(client, ALICE, PASSWORD)
        assert again.status_code == 429 and again.headers["Retry-After"] == str(wait)
    assert ACCOUNT_BACKOFF.wait_after(100) == datetime.timedelta(minutes=5), "capped: no lock"

    stop_clock(monkeypatch, moment + datetime.timedelta(seconds=8))
    assert ask_token(client, ALICE, PASSWORD).status_code == 201
    assert failures_of(app, email_key(ALICE)) == 0, "a success resets the account's count"
    assert [ask_token(client, ALICE, "wrong-pass-1").status_code for _ in range(5)] == [401] * 5


def test_failures_are_forgotten_after_a_quiet_while(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    stop_clock(monkeypatch, NOW)
    for _ in range(5):
        ask_token(client, ALICE, "wrong-pass-1")
    assert failures_of(app, email_key(ALICE)) == 5
    stop_clock(monkeypatch, NOW + datetime.timedelta(minutes=16))
    assert ask_token(client, ALICE, "wrong-pass-1").status_code == 401
    assert failures_of(app, email_key(ALICE)) == 1, "the count starts again after the backoff"


def test_unknown_emails_back_off_like_real_ones(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    stop_clock(monkeypatch, NOW)
    for email in (ALICE, NOBODY):
        answers = [ask_token(client, email, "wrong-pass-1") for _ in range(6)]
        assert [a.status_code for a in answers] == [401] * 5 + [429]
        assert answers[-1].headers["Retry-After"] == "1"


def test_one_address_trying_many_accounts_is_limited(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per client address, whatever the e-mails: then even a right password waits there,
    and the account stays usable from elsewhere."""
    monkeypatch.setattr("storage.accounts.ADDRESS_BACKOFF", Backoff(4, ADDRESS_BACKOFF.longest))
    client = app.test_client()
    stop_clock(monkeypatch, NOW)
    attacker = "203.0.113.9"
    codes = [
        ask_token(client, f"guess{n}@example.org", "wrong-pass-1", attacker).status_code
        for n in range(4)
    ]
    assert codes == [401] * 4
    blocked = ask_token(client, ALICE, PASSWORD, attacker)
    assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "1"
    assert ask_token(client, ALICE, PASSWORD, "198.51.100.4").status_code == 201
    assert failures_of(app, "address:203.0.113.9") == 4


def test_concurrent_failures_are_all_counted(app: Flask) -> None:
    """Eight simultaneous wrong passwords: each answered 401 is one count, none lost."""
    answers: list[int] = []

    def attempt() -> None:
        answers.append(ask_token(app.test_client(), ALICE, "wrong-pass-1").status_code)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 8 and set(answers) <= {401, 429}
    assert failures_of(app, email_key(ALICE)) == answers.count(401) >= 5
    assert failures_of(app, "address:127.0.0.1") == answers.count(401)
    with app.app_context():
        denied = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "token", AuditEvent.outcome == "denied")
        ).all()
    assert len(denied) == 8


def test_the_counter_takes_concurrent_increments_exactly(app: Flask) -> None:
    """The atomic upsert, from four threads on their own connections: 4 x 25 = 100."""
    with app.app_context():
        engine = db.engine

    def count_failures() -> None:
        for _ in range(25):
            with Session(engine) as session, session.begin():
                record_failure(session, "email:race@example.org", ACCOUNT_BACKOFF, NOW)

    threads = [threading.Thread(target=count_failures) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures_of(app, "email:race@example.org") == 100


def test_admin_unlocks_and_sets_a_temporary_password_that_must_be_changed(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_clock(monkeypatch, NOW)
    alice, admin = app.test_client(), app.test_client()
    alice_token = bearer(alice)
    alice_browser = app.test_client()
    sign_in(alice_browser)
    for _ in range(6):
        ask_token(alice, ALICE, "wrong-pass-1")
    assert ask_token(alice, ALICE, PASSWORD).status_code == 429

    sign_in(admin, "admin@example.org", ADMIN_PASSWORD)
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "backing off until 09:00:0" in page
    with app.app_context():
        alice_id = db.session.scalar(select(User.id).where(User.email == ALICE))
    unlock = form_post(admin, "/admin/users", f"/admin/users/{alice_id}/unlock", {})
    assert unlock.status_code == 302
    assert ask_token(alice, ALICE, PASSWORD).status_code == 201, "unlocked at once"

    weak = form_post(
        admin, "/admin/users", f"/admin/users/{alice_id}/password", {"password": "short"}
    )
    assert "Password refused" in admin.get(weak.location).get_data(as_text=True)
    temporary = "temporary-pass-42"
    reset = form_post(
        admin, "/admin/users", f"/admin/users/{alice_id}/password", {"password": temporary}
    )
    assert reset.status_code == 302
    assert alice.get("/api/v1/studies", headers=alice_token).status_code == 401, "tokens end"
    assert alice_browser.get("/worklist").status_code == 302, "sessions end"
    assert ask_token(alice, ALICE, PASSWORD).status_code == 401, "the old password is gone"
    refused = ask_token(alice, ALICE, temporary)
    assert refused.status_code == 403
    assert refused.json["error"].startswith("the password is temporary")

    browser = app.test_client()
    first = post_login(browser, ALICE, temporary)
    assert first.status_code == 302 and first.location.startswith("/account/password")
    for path in ("/worklist", "/admin/users", "/studies/1.2.3"):
        answer = browser.get(path)
        assert answer.status_code == 302 and answer.location.startswith("/account/password")
    assert browser.get("/api/v1/studies").status_code == 403
    own = "my-own-choice-pass-9"
    change = form_post(
        browser,
        "/account/password",
        "/account/password",
        {"current": temporary, "new": own, "repeat": own},
    )
    assert change.status_code == 302
    assert browser.get("/worklist").status_code == 200
    assert ask_token(alice, ALICE, own).status_code == 201
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert {"user_unlock", "user_set_password", "password_change"} <= set(actions)


def test_users_change_their_own_password(app: Flask) -> None:
    browser, other_browser, program = app.test_client(), app.test_client(), app.test_client()
    sign_in(browser)
    sign_in(other_browser)
    token = bearer(program)
    new = "brand-new-secret-5"
    for fields, message in (
        ({"current": "wrong-pass-1", "new": new, "repeat": new}, "current password is wrong"),
        ({"current": PASSWORD, "new": "short", "repeat": "short"}, "Password refused"),
        ({"current": PASSWORD, "new": new, "repeat": new + "x"}, "two new passwords differ"),
        ({"current": PASSWORD, "new": PASSWORD, "repeat": PASSWORD}, "must differ"),
    ):
        answer = form_post(browser, "/account/password", "/account/password", fields)
        assert message in answer.get_data(as_text=True), fields
    assert ask_token(program, ALICE, PASSWORD).status_code == 201, "nothing changed yet"

    done = form_post(
        browser,
        "/account/password",
        "/account/password",
        {"current": PASSWORD, "new": new, "repeat": new},
    )
    assert done.status_code == 302
    assert browser.get("/worklist").status_code == 200, "this browser stays signed in"
    assert other_browser.get("/worklist").status_code == 302, "the other session ended"
    assert program.get("/api/v1/studies", headers=token).status_code == 401, "tokens ended"
    assert ask_token(program, ALICE, PASSWORD).status_code == 401
    assert ask_token(program, ALICE, new).status_code == 201
    with app.app_context():
        revoked = db.session.scalars(select(ApiToken.revoked_at)).all()
    assert any(revoked)


def test_the_audit_trail_of_a_failed_sign_in_names_the_email_not_the_password(
    app: Flask,
) -> None:
    client = app.test_client()
    post_login(client, "Alice@Example.org ", "wrong-pass-1")
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "login")).one()
    assert (event.user_email, event.outcome, event.detail) == (ALICE, "denied", "wrong")
    assert "wrong-pass-1" not in repr(vars(event))
    assert csrf_token_of(client.get("/login").get_data(as_text=True))
    with app.app_context():
        write_audit(db.session, action="probe", outcome="success", now=NOW)
        db.session.commit()
