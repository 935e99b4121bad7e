"""The worklist's polling endpoint (ETag, 304 while nothing changed; the same answer from
every gunicorn process) and "next unread" of a filtered list, without a browser
(tests/test_keyboard_browser.py drives them in Chromium)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from config.settings import load_settings
from core.accounts import Role
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.models.accounts import AuditEvent, User
from storage.models.studies import Study
from tests.support.apps import make_study
from tests.support.databases import new_database
from tests.support.services import find_free_port, make_env
from tests.support.tools import require_tool
from tests.support.users import NOW, PASSWORD, csrf_token_of, sign_in

ROOT = Path(__file__).resolve().parents[1]


def uid(index: int) -> str:
    return f"1.2.826.0.1.3680043.10.{index + 1}"


def test_changes_answer_304_until_the_page_changes(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "radiologist")
    page = client.get("/worklist?modality=CT&page=1")
    first = client.get("/worklist/changes?modality=CT&page=1")
    assert first.status_code == 200 and first.json["total"] == 10
    etag = first.json["etag"]
    assert first.headers["ETag"] == f'"{etag}"'
    assert f'data-etag="{etag}"' in page.get_data(as_text=True), "the page and its poll agree"
    with app.app_context():
        audited = db.session.scalar(select(db.func.count()).select_from(AuditEvent))

    unchanged = client.get(
        "/worklist/changes?modality=CT&page=1", headers={"If-None-Match": f'"{etag}"'}
    )
    assert unchanged.status_code == 304 and unchanged.data == b""

    # A study of another modality does not change this page; a CT does, and so does a status.
    with app.app_context():
        db.session.add(make_study(100, modality="MR", modalities="MR"))
        db.session.commit()
    again = client.get(
        "/worklist/changes?modality=CT&page=1", headers={"If-None-Match": f'"{etag}"'}
    )
    assert again.status_code == 304
    with app.app_context():
        db.session.add(make_study(101, modality="CT", modalities="CT"))
        db.session.commit()
    arrived = client.get(
        "/worklist/changes?modality=CT&page=1", headers={"If-None-Match": f'"{etag}"'}
    )
    assert arrived.status_code == 200 and arrived.json["total"] == 11
    etag = arrived.json["etag"]
    with app.app_context():
        db.session.scalar(select(Study).where(Study.study_instance_uid == uid(0))).status = "final"
        db.session.commit()
    signed = client.get(
        "/worklist/changes?modality=CT&page=1", headers={"If-None-Match": f'"{etag}"'}
    )
    assert signed.status_code == 200 and signed.json["etag"] != etag

    # Polls carry no patient data and are not audited (the page they lead to reload is).
    assert set(signed.json) == {"etag", "total"}
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(AuditEvent)) == audited

    # Nonsense filters are dropped, as on the page, never an error.
    assert client.get("/worklist/changes?page=abc&status=bogus&sort=x'--").status_code == 200


def test_changes_are_for_worklist_roles_only(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/worklist/changes").status_code in (302, 401)
    sign_in(client, "referrer")
    assert client.get("/worklist/changes").status_code == 403


def next_of(client, query: str) -> tuple[str, dict[str, list[str]]]:
    response = client.get(f"/worklist/next?{query}")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    return location.path, parse_qs(location.query)


def test_next_unread_follows_the_filtered_list_in_its_order(app: Flask) -> None:
    """CT studies are indexes 0, 3, 6, ... (newest first by default); 6 is someone else's, 9
    is signed: after 3 comes 12, and after the last one the list starts again at the top."""
    client = app.test_client()
    sign_in(client, "radiologist")
    with app.app_context():
        second = db.session.scalar(select(User).where(User.email == "second@example.org"))
        db.session.scalar(
            select(Study).where(Study.study_instance_uid == uid(6))
        ).assignee_id = second.id
        db.session.scalar(select(Study).where(Study.study_instance_uid == uid(9))).status = "final"
        db.session.commit()

    path, args = next_of(client, f"modality=CT&after={uid(3)}")
    assert path == f"/studies/{uid(12)}/report/edit"
    assert args == {"modality": ["CT"]}, "the list's filters travel on, `after` does not"
    assert next_of(client, f"modality=CT&after={uid(27)}")[0] == f"/studies/{uid(0)}/report/edit"
    # The list's own order: oldest first, after 12 comes 3 (9 signed, 6 someone else's).
    path, args = next_of(client, f"modality=CT&sort=received_at&order=asc&after={uid(12)}")
    assert path == f"/studies/{uid(3)}/report/edit"
    assert args == {"modality": ["CT"], "sort": ["received_at"], "order": ["asc"]}
    # A study just signed (final now) still marks the place in the list.
    path, _ = next_of(client, f"modality=CT&after={uid(9)}")
    assert path == f"/studies/{uid(12)}/report/edit"
    # An unknown or missing `after`: the list's first unread study.
    assert next_of(client, "modality=CT&after=1.2.3")[0] == f"/studies/{uid(0)}/report/edit"

    # Hostile or nonsense arguments: dropped as on the worklist page, never an error.
    assert next_of(client, "modality=CT&after=" + "9" * 5000)[0] == f"/studies/{uid(0)}/report/edit"
    path, args = next_of(client, "modality=CT&sort=1;drop&order=sideways&status=<x>&page=-3")
    assert path == f"/studies/{uid(0)}/report/edit"
    assert args["modality"] == ["CT"]

    # A list with nothing left to read: back to that list, saying so.
    path, args = next_of(client, f"status=final&after={uid(3)}")
    assert path == "/worklist" and args == {"status": ["final"]}
    assert "No unread study is left" in client.get("/worklist?status=final").get_data(as_text=True)


def test_admins_next_goes_to_the_study_page(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "admin")
    assert next_of(client, f"after={uid(0)}")[0] == f"/studies/{uid(1)}"


@pytest.fixture
def gunicorn_portal(tmp_path: Path, password_hash: str) -> Iterator[tuple[str, Flask]]:
    """`pacs portal`'s shape: gunicorn with three processes on one database (a radiologist
    and the 30 worklist studies); yields its URL and an app on the same database."""
    require_tool("gunicorn")
    env = make_env(tmp_path, PACS_DATABASE_URL=new_database(tmp_path / "pacs.sqlite3"))
    app = create_app({"PACS_SETTINGS": load_settings(env)})
    with app.app_context():
        user = create_user(db.session, "radiologist@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
        user.password_hash = password_hash
        db.session.add_all(make_study(index) for index in range(30))
        db.session.commit()
    port = find_free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            *("-c", "python:portal.gunicorn_config", "--bind", f"127.0.0.1:{port}"),
            *("--workers", "3", "pacs.wsgi:make_app()"),
        ],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PACS_")}, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90  # each worker imports the whole portal first
        while True:
            try:
                requests.get(f"{url}/api/v1/openapi.json", timeout=30)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline and process.poll() is None, "gunicorn died"
                time.sleep(0.2)
        yield url, app
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_every_gunicorn_process_gives_the_same_etag_and_sees_a_new_study(
    gunicorn_portal: tuple[str, Flask],
) -> None:
    """No state in a process: whichever one answers a poll (a new connection each time, so
    gunicorn's processes take turns), the ETag is the same, and a study written by another
    process (here the test) changes it for all of them."""
    url, app = gunicorn_portal
    session = requests.Session()
    session.trust_env = False
    token = csrf_token_of(session.get(f"{url}/login").text)
    signed_in = session.post(
        f"{url}/login",
        data={"email": "radiologist@example.org", "password": PASSWORD, "csrf_token": token},
    )
    assert signed_in.ok
    changes = f"{url}/worklist/changes?modality=CT"

    def poll(etag: str = "") -> requests.Response:
        headers = {"Connection": "close", **({"If-None-Match": f'"{etag}"'} if etag else {})}
        return session.get(changes, headers=headers, timeout=30)

    etag = poll().json()["etag"]
    assert [poll(etag).status_code for _ in range(12)] == [304] * 12
    with app.app_context():
        db.session.add(make_study(300, modality="CT", modalities="CT"))
        db.session.commit()
    answers = [poll(etag) for _ in range(12)]
    assert [a.status_code for a in answers] == [200] * 12
    assert len({a.json()["etag"] for a in answers}) == 1 and answers[0].json()["total"] == 11
