"""The worklist's polling endpoint (ETag, 304 while nothing changed) and "next unread" of a
filtered list, without a browser (tests/test_keyboard_browser.py drives them in Chromium)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import Flask
from sqlalchemy import select

from portal.extensions import db
from storage.models.accounts import AuditEvent, User
from storage.models.studies import Study
from tests.support.apps import make_study
from tests.support.users import sign_in


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

    # A list with nothing left to read: back to that list, saying so.
    path, args = next_of(client, f"status=final&after={uid(3)}")
    assert path == "/worklist" and args == {"status": ["final"]}
    assert "No unread study is left" in client.get("/worklist?status=final").get_data(as_text=True)


def test_admins_next_goes_to_the_study_page(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "admin")
    assert next_of(client, f"after={uid(0)}")[0] == f"/studies/{uid(1)}"
