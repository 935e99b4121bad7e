"""The portal without a browser: roles on every route, sign-in, tokens, worklist API, audit."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from flask import Flask

from config.settings import load_settings
from portal import create_app
from portal.extensions import db
from storage.models.accounts import AuditEvent, User
from storage.models.pipeline import IngestRetry
from storage.models.quarantine import QuarantinedStudy
from storage.models.studies import Series, Study, StudyEvent
from tests.support.apps import make_study
from tests.support.clock import stop_clock
from tests.support.services import make_env
from tests.support.users import NOW, PASSWORD, csrf_token_of, sign_in, token_for


def test_sign_in_with_csrf_then_worklist_and_sign_out(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/worklist").status_code == 302  # to the login page
    sign_in(client, "radiologist")
    page = client.get("/worklist")
    assert page.status_code == 200
    assert "Patient00, Test" in page.get_data(as_text=True)
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    token = csrf_token_of(page.get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/worklist").status_code == 302


def test_form_posts_without_csrf_token_are_rejected(app: Flask) -> None:
    client = app.test_client()
    login = client.post("/login", data={"email": "admin@example.org", "password": PASSWORD})
    assert login.status_code == 200 and "Sign in" in login.get_data(as_text=True)
    sign_in(client, "radiologist")
    assign = client.post("/studies/1.2.826.0.1.3680043.10.1/assign", data={"action": "take"})
    assert assign.status_code == 400


def test_cookie_session_cookie_flags(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"email": "admin@example.org", "password": PASSWORD, "csrf_token": token}
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_ten_wrong_passwords_back_off_and_are_audited(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated failures slow an account down (429 with Retry-After); none locks it for good
    (the contract's 423 is gone: tests/test_sign_in.py has the backoff in detail)."""
    stop_clock(monkeypatch, NOW)
    client = app.test_client()
    responses = [
        client.post(
            "/api/v1/auth/token", json={"email": "manager@example.org", "password": "wrong-one!"}
        )
        for _ in range(10)
    ]
    assert [r.status_code for r in responses] == [401] * 5 + [429] * 5
    assert responses[-1].headers["Retry-After"] == "1"
    right = client.post(
        "/api/v1/auth/token", json={"email": "manager@example.org", "password": PASSWORD}
    )
    assert right.status_code == 429, "the backoff holds for the right password too"
    stop_clock(monkeypatch, NOW + datetime.timedelta(seconds=1))
    later = client.post(
        "/api/v1/auth/token", json={"email": "manager@example.org", "password": PASSWORD}
    )
    assert later.status_code == 201
    with app.app_context():
        denied = db.session.query(AuditEvent).filter_by(action="token", outcome="denied").count()
    assert denied == 11


def test_logout_everywhere_revokes_tokens(app: Flask) -> None:
    client = app.test_client()
    headers = token_for(client, "radiologist")
    assert client.get("/api/v1/studies", headers=headers).status_code == 200
    sign_in(client, "radiologist")
    token = csrf_token_of(client.get("/worklist").get_data(as_text=True))
    assert client.post("/logout-everywhere", data={"csrf_token": token}).status_code == 302
    assert client.get("/api/v1/studies", headers=headers).status_code == 401


def test_worklist_api_filters_sorts_and_pages(app: Flask) -> None:
    client = app.test_client()
    headers = token_for(client, "radiologist")
    first = client.get("/api/v1/studies?per_page=10&sort=received_at&order=desc", headers=headers)
    assert first.status_code == 200
    body = first.json
    assert body["total"] == 30 and len(body["items"]) == 10
    assert body["counts"]["received"] == 30
    received = [item["received_at"] for item in body["items"]]
    assert received == sorted(received, reverse=True)

    ct = client.get("/api/v1/studies?modality=CT&per_page=200", headers=headers).json
    assert ct["total"] == 10 and {i["modality"] for i in ct["items"]} == {"CT"}
    stat_first = client.get("/api/v1/studies?sort=priority&order=desc", headers=headers).json
    assert stat_first["items"][0]["priority"] == "STAT"
    by_name = client.get("/api/v1/studies?q=patient07,%20test", headers=headers).json
    assert [i["patient_id"] for i in by_name["items"]] == ["PID0007"]
    by_accession = client.get("/api/v1/studies?q=ACC00012", headers=headers).json
    assert by_accession["total"] == 1
    dated = client.get("/api/v1/studies?from=2026-11-05&to=2026-11-06", headers=headers).json
    assert all(i["study_date"] in ("2026-11-05", "2026-11-06") for i in dated["items"])
    assert dated["total"] == 4
    last_page = client.get("/api/v1/studies?per_page=8&page=4", headers=headers).json
    assert len(last_page["items"]) == 6


@pytest.mark.parametrize(
    "query",
    [
        "sort=patient_name;drop",
        "per_page=100000",
        "page=0",
        "from=yesterday",
        "colour=red",
        "status=nonsense",
        "priority=whenever",
    ],
)
def test_bad_worklist_filters_get_a_json_4xx(app: Flask, query: str) -> None:
    client = app.test_client()
    response = client.get(f"/api/v1/studies?{query}", headers=token_for(client, "admin"))
    assert response.status_code in (400, 422)
    assert response.json["error"]


def test_malformed_json_and_oversize_inputs_are_4xx(app: Flask) -> None:
    client = app.test_client()
    headers = {**token_for(client, "admin"), "Content-Type": "application/json"}
    url = "/api/v1/studies/1.2.826.0.1.3680043.10.1/priority"
    assert client.post(url, data="{", headers=headers).status_code == 400
    long_reason = {"priority": "STAT", "reason": "x" * 5000}
    assert client.post(url, json=long_reason, headers=headers).status_code == 422
    assert client.get("/api/v1/studies/" + "1" * 80, headers=headers).status_code == 400
    assert client.get("/api/v1/studies/1.2.3.4.5", headers=headers).status_code == 404


def test_assignment_rules(app: Flask) -> None:
    client = app.test_client()
    me, other, admin = (token_for(client, r) for r in ("radiologist", "second", "admin"))
    url = "/api/v1/studies/1.2.826.0.1.3680043.10.3/assign"
    taken = client.post(url, json={"assignee": "radiologist@example.org"}, headers=me)
    assert taken.status_code == 200 and taken.json["assignee"] == "radiologist@example.org"
    stolen = client.post(url, json={"assignee": "second@example.org"}, headers=other)
    assert stolen.status_code == 409
    blocked = client.post(url, json={"assignee": "second@example.org"}, headers=admin)
    assert blocked.status_code == 200 and blocked.json["assignee"] == "second@example.org"
    not_a_radiologist = client.post(url, json={"assignee": "manager@example.org"}, headers=admin)
    assert not_a_radiologist.status_code == 403
    mine = client.get("/api/v1/studies?assignee=me", headers=other).json
    assert [i["study_instance_uid"] for i in mine["items"]] == ["1.2.826.0.1.3680043.10.3"]
    unassigned = client.get("/api/v1/studies?assignee=unassigned", headers=other).json
    assert unassigned["total"] == 29


def test_priority_change_is_audited_with_its_reason(app: Flask) -> None:
    client = app.test_client()
    url = "/api/v1/studies/1.2.826.0.1.3680043.10.2/priority"
    response = client.post(
        url,
        json={"priority": "STAT", "reason": "clinical deterioration"},
        headers=token_for(client, "radiologist"),
    )
    assert response.status_code == 200 and response.json["priority"] == "STAT"
    audit = client.get("/api/v1/audit?action=priority", headers=token_for(client, "admin")).json
    assert "clinical deterioration" in audit["items"][0]["detail"]
    assert audit["items"][0]["study_uid"] == "1.2.826.0.1.3680043.10.2"


def test_patient_data_is_escaped_text(app: Flask) -> None:
    with app.app_context():
        db.session.add(make_study(99, patient_name="<script>alert(1)</script>^Eve"))
        db.session.commit()
    client = app.test_client()
    sign_in(client, "admin")
    html = client.get("/worklist?q=Eve").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;, Eve" in html


def test_views_and_denials_are_audited_and_the_trail_has_no_write_route(app: Flask) -> None:
    client = app.test_client()
    client.get("/api/v1/studies", headers=token_for(client, "radiologist"))
    client.get("/api/v1/studies", headers=token_for(client, "referrer"))
    admin = token_for(client, "admin")
    trail = client.get("/api/v1/audit", headers=admin).json["items"]
    actions = {(e["action"], e["outcome"], e["role"]) for e in trail}
    assert ("view_worklist", "success", "radiologist") in actions
    assert ("access", "denied", "referrer") in actions
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert client.open("/api/v1/audit", method=method, headers=admin).status_code == 405


def test_openapi_document_answers_without_login(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/studies" in spec.json["paths"]


def test_study_page_shows_details_series_and_timeline(app: Flask) -> None:
    with app.app_context():
        study = make_study(50, study_instance_uid="1.2.826.0.1.3680043.10.50")
        study.series = [
            Series(
                series_instance_uid="1.2.826.0.1.3680043.10.50.1",
                series_number=1,
                modality="CT",
                description="Axial <b>soft</b>",
                instance_count=40,
            )
        ]
        study.events = [StudyEvent(at=NOW, kind="received")]
        db.session.add(study)
        db.session.commit()
    client = app.test_client()
    headers = token_for(client, "radiologist")
    client.post(
        "/api/v1/studies/1.2.826.0.1.3680043.10.50/assign",
        json={"assignee": "radiologist@example.org"},
        headers=headers,
    )
    sign_in(client, "radiologist")
    html = client.get("/studies/1.2.826.0.1.3680043.10.50").get_data(as_text=True)
    assert "Patient50, Test" in html and "PID0050" in html
    assert "Axial &lt;b&gt;soft&lt;/b&gt;" in html and "40 images" in html
    assert "series/1.2.826.0.1.3680043.10.50.1/preview.png" in html
    timeline = html[html.index("Timeline") :]
    assert timeline.index("received") < timeline.index("assigned by radiologist@example.org")
    assert (
        client.get("/studies/1.2.826.0.1.3680043.10.50/series/9.9/preview.png").status_code == 404
    )


def test_referrer_sees_only_own_reported_studies(app: Flask) -> None:
    with app.app_context():
        referrer = db.session.query(User).filter_by(email="referrer@example.org").one()
        referrer.dicom_name = "House^Gregory^^Dr"
        db.session.add_all(
            [
                make_study(60, referring_physician="HOUSE^Gregory^^Dr", status="final"),
                make_study(61, referring_physician="House^Gregory^^Dr", status="received"),
                make_study(62, referring_physician="Quinn^Michaela^^Dr", status="final"),
            ]
        )
        db.session.commit()
    client = app.test_client()
    sign_in(client, "referrer")
    html = client.get("/referrals").get_data(as_text=True)
    assert "PID0060" in html
    assert "PID0061" not in html, "an unread study must not show"
    assert "PID0062" not in html, "another referrer's patient must not show"
    assert client.get("/worklist").status_code == 403


def test_admin_adds_and_disables_users(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "admin")
    page = client.get("/admin/users").get_data(as_text=True)
    form = {
        "csrf_token": csrf_token_of(page),
        "email": "new.doc@example.org",
        "display_name": "New Doc",
        "role": "radiologist",
        "dicom_name": "",
        "password": "short",
    }
    refused = client.post("/admin/users", data=form).get_data(as_text=True)
    assert "Password refused" in refused
    form["password"] = "another-long-passphrase"
    assert client.post("/admin/users", data=form).status_code == 302
    refused = client.post(
        "/api/v1/auth/token", json={"email": "new.doc@example.org", "password": PASSWORD}
    )
    assert refused.status_code == 403 and "temporary" in refused.json["error"]
    newcomer = app.test_client()
    sign_in(newcomer, "new.doc")  # the admin's password is temporary: choose one first
    page = newcomer.get("/worklist")
    assert page.status_code == 302 and page.location.startswith("/account/password")
    change = {"current": PASSWORD, "new": "my-own-passphrase-1", "repeat": "my-own-passphrase-1"}
    token = csrf_token_of(newcomer.get("/account/password").get_data(as_text=True))
    assert (
        newcomer.post("/account/password", data={**change, "csrf_token": token}).status_code == 302
    )
    headers = token_for(client, "new.doc")
    assert client.get("/api/v1/studies", headers=headers).status_code == 200
    with app.app_context():
        user_id = db.session.query(User).filter_by(email="new.doc@example.org").one().id
    token = csrf_token_of(client.get("/admin/users").get_data(as_text=True))
    client.post(f"/admin/users/{user_id}/disable", data={"csrf_token": token})
    assert client.get("/api/v1/studies", headers=headers).status_code == 401
    trail = client.get("/api/v1/audit?action=user_add", headers=token_for(client, "admin")).json
    assert trail["items"][0]["object_id"] == "new.doc@example.org"


def test_audit_csv_download_neutralises_formulas(app: Flask) -> None:
    client = app.test_client()
    client.post("/api/v1/auth/token", json={"email": "=cmd@example.org", "password": "nope"})
    sign_in(client, "admin")
    response = client.get("/admin/audit?format=csv&action=token")
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.splitlines()[0].startswith("at,user_email,role")
    assert "'=cmd@example.org" in text


def test_quarantine_release_via_api_queues_the_study(app: Flask) -> None:
    submitted: list[str] = []
    app.extensions["pacs_dispatcher"] = type(
        "D", (), {"submit": lambda s, i: submitted.append(i)}
    )()
    orthanc_id = "0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d"
    with app.app_context():
        db.session.add(
            QuarantinedStudy(
                orthanc_id=orthanc_id,
                state="open",
                study_instance_uid="1.2.3",
                reasons=[],
                quarantined_at=NOW,
                checked_at=NOW,
            )
        )
        db.session.commit()
    client = app.test_client()
    admin = token_for(client, "admin")
    listed = client.get("/api/v1/quarantine", headers=admin).json["items"]
    assert [e["orthanc_id"] for e in listed] == [orthanc_id]
    released = client.post(f"/api/v1/quarantine/{orthanc_id}/release", headers=admin)
    assert released.status_code == 202 and released.json["state"] == "released"
    assert submitted == [orthanc_id]
    again = client.post(f"/api/v1/quarantine/{orthanc_id}/release", headers=admin)
    assert again.status_code == 404 and "no open quarantine entry" in again.json["error"]
    with app.app_context():
        assert db.session.get(IngestRetry, orthanc_id) is not None


def test_study_page_forms_assign_and_change_priority(app: Flask) -> None:
    uid = "1.2.826.0.1.3680043.10.4"
    client = app.test_client()
    sign_in(client, "admin")
    page = client.get(f"/studies/{uid}").get_data(as_text=True)
    token = csrf_token_of(page)
    assert "second@example.org" in page  # admins choose among radiologists
    client.post(
        f"/studies/{uid}/assign",
        data={"csrf_token": token, "action": "assign", "assignee": "second@example.org"},
    )
    no_reason = client.post(
        f"/studies/{uid}/priority", data={"csrf_token": token, "priority": "STAT", "reason": ""}
    )
    assert no_reason.status_code == 302
    client.post(
        f"/studies/{uid}/priority",
        data={"csrf_token": token, "priority": "STAT", "reason": "sepsis suspected"},
    )
    html = client.get(f"/studies/{uid}").get_data(as_text=True)
    assert "assigned by admin@example.org" in html and "sepsis suspected" in html
    with app.app_context():
        study = db.session.query(Study).filter_by(study_instance_uid=uid).one()
        assert study.priority == "STAT" and study.assignee.email == "second@example.org"


def test_behind_an_https_proxy_cookies_are_secure(tmp_path: Path) -> None:
    settings = load_settings(make_env(tmp_path, PACS_PORTAL_PROXIES="1", PACS_PORTAL_HTTPS="1"))
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    client = app.test_client()
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in response.headers["Set-Cookie"]
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_cookie_api_write_without_csrf_gets_json_400(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "radiologist")
    response = client.post(
        "/api/v1/studies/1.2.826.0.1.3680043.10.1/assign", json={"assignee": None}
    )
    assert response.status_code == 400
    assert "CSRF" in response.json["error"]
