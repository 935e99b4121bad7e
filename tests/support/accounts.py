"""A real portal on a temporary SQLite database with real bcrypt, and sign-in helpers."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from config.settings import load_settings
from core.accounts import Role
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from tests.support.services import make_env

PASSWORD = "correct-horse-battery"
ADMIN_PASSWORD = "admin-passphrase-77"
NOW = datetime.datetime(2026, 11, 30, 9, 0, tzinfo=datetime.UTC)


def make_portal(home: Path, **env: str) -> Flask:
    """The portal with alice (radiologist) and an admin, both with real bcrypt hashes."""
    app = create_app({"PACS_SETTINGS": load_settings(make_env(home, **env)), "TESTING": True})
    with app.app_context():
        create_user(db.session, "alice@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
        create_user(db.session, "admin@example.org", ADMIN_PASSWORD, Role.ADMIN, NOW)
        db.session.commit()
    return app


def csrf_token_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def post_login(client: FlaskClient, email: str, password: str):
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def sign_in(client: FlaskClient, email: str = "alice@example.org", password: str = PASSWORD):
    response = post_login(client, email, password)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def ask_token(client: FlaskClient, email: str, password: str, address: str = "127.0.0.1"):
    return client.post(
        "/api/v1/auth/token",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def bearer(client: FlaskClient, email: str = "alice@example.org", password: str = PASSWORD):
    response = ask_token(client, email, password)
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def form_post(client: FlaskClient, page: str, url: str, data: dict[str, str]):
    """POST a form as the browser would: with the CSRF token of the page it sits on."""
    token = csrf_token_of(client.get(page).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})
