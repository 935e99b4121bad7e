"""The tests' users: one password for all, API tokens and sign-in of a Flask test client."""

from __future__ import annotations

import datetime
import re

from flask.testing import FlaskClient

PASSWORD = "a-long-enough-passphrase"
NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)


def token_for(client: FlaskClient, role: str) -> dict[str, str]:
    """Bearer headers of `role@example.org`."""
    response = client.post(
        "/api/v1/auth/token", json={"email": f"{role}@example.org", "password": PASSWORD}
    )
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def csrf_token_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def sign_in(client: FlaskClient, role: str) -> None:
    """Sign `role@example.org` in through the form, CSRF token and all."""
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"email": f"{role}@example.org", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
