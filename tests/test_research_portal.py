"""Research exports in the portal: counts only, own requests, admin decisions, own downloads."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.accounts import Role
from portal.extensions import db
from storage.accounts import create_user
from storage.models.accounts import AuditEvent
from storage.models.exports import ExportPseudonym, ResearchExport
from tests.support.users import NOW, PASSWORD, csrf_token_of, sign_in, token_for

REQUEST = {
    "cohort": {"modality": "CT", "date_from": "2026-11-01", "date_to": "2026-11-30"},
    "profile": "basic,modified-dates",
    "purpose": "Training a nodule detector on chest CT",
}


class RecordingDispatcher:
    """Stands in for the pipeline: records which exports were handed to it."""

    def __init__(self) -> None:
        self.exports: list[int] = []

    def submit(self, orthanc_study_id: str) -> None:
        raise AssertionError("no ingestion expected")

    def submit_export(self, export_id: int) -> None:
        self.exports.append(export_id)

    def request_refresh(self) -> None:
        """The dashboards are not under test here."""


@pytest.fixture
def dispatcher(app: Flask) -> RecordingDispatcher:
    recorder = RecordingDispatcher()
    app.extensions["pacs_dispatcher"] = recorder
    with app.app_context():
        create_user(db.session, "other-researcher@example.org", PASSWORD, Role.RESEARCHER, NOW)
        db.session.commit()
    return recorder


def headers_of(client: FlaskClient, email: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json['token']}"}


def audit_actions(app: Flask) -> list[tuple[str, str, str]]:
    with app.app_context():
        return [
            (e.action, e.outcome, e.user_email)
            for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def test_a_researcher_sees_cohort_counts_only(app: Flask, dispatcher) -> None:
    client = app.test_client()
    researcher = token_for(client, "researcher")
    response = client.post(
        "/api/v1/exports/cohort-size", json={"cohort": {"modality": "CT"}}, headers=researcher
    )
    assert response.status_code == 200
    # make_study: every third of the 30 studies is CT, study i has i + 1 instances.
    assert response.json == {
        "studies": 10,
        "patients": 10,
        "instances": sum(i + 1 for i in range(0, 30, 3)),
        "modalities": {"CT": 10},
    }
    bad = client.post(
        "/api/v1/exports/cohort-size", json={"cohort": {"patient_name": "x"}}, headers=researcher
    )
    assert bad.status_code == 422
    assert client.get("/api/v1/studies", headers=researcher).status_code == 403
    assert ("cohort_size", "success", "researcher@example.org") in audit_actions(app)


def test_request_approval_and_downloads_are_each_users_own(
    app: Flask,
    dispatcher: RecordingDispatcher,
    tmp_path: Path,
) -> None:
    client = app.test_client()
    researcher = token_for(client, "researcher")
    other = headers_of(client, "other-researcher@example.org")
    admin = token_for(client, "admin")

    created = client.post("/api/v1/exports", json=REQUEST, headers=researcher)
    assert created.status_code == 201, created.json
    export_id = created.json["id"]
    assert created.json["state"] == "requested"
    assert created.json["profile"] == "basic,modified-dates"
    assert "salt" not in created.json

    bad = dict(REQUEST, profile="basic,keep-everything")
    assert client.post("/api/v1/exports", json=bad, headers=researcher).status_code == 422
    short = dict(REQUEST, purpose="x")
    assert client.post("/api/v1/exports", json=short, headers=researcher).status_code == 422

    assert client.get(f"/api/v1/exports/{export_id}", headers=other).status_code == 404
    assert client.get("/api/v1/exports", headers=other).json["items"] == []
    assert [e["id"] for e in client.get("/api/v1/exports", headers=admin).json["items"]] == [
        export_id
    ]
    approve = f"/api/v1/exports/{export_id}/approve"
    assert client.post(approve, json={}, headers=researcher).status_code == 403
    no_reason = client.post(f"/api/v1/exports/{export_id}/reject", json={}, headers=admin)
    assert no_reason.status_code == 422
    approved = client.post(approve, json={"reason": "ethics ok"}, headers=admin)
    assert approved.status_code == 200 and approved.json["state"] == "approved"
    assert dispatcher.exports == [export_id]
    assert client.post(approve, json={}, headers=admin).status_code == 409

    # The flow's outcome (tests/test_export.py runs it for real): a finished ZIP.
    archive = tmp_path / f"export-{export_id}.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("manifest.csv", "pseudonym\n")
    with app.app_context():
        export = db.session.get(ResearchExport, export_id)
        export.state, export.destination = "done", str(archive)
        db.session.add(
            ExportPseudonym(
                export_id=export_id, patient_key="id:PID1", pseudonym="RES-A", shift_days=-40
            )
        )
        db.session.commit()

    download = f"/api/v1/exports/{export_id}/download"
    mine = client.get(download, headers=researcher)
    assert mine.status_code == 200 and mine.data == archive.read_bytes()
    assert client.get(download, headers=other).status_code == 404
    assert client.get(download, headers=admin).status_code == 404
    assert client.get(f"/api/v1/exports/{export_id}", headers=researcher).json["downloadable"]

    mapping = f"/api/v1/exports/{export_id}/pseudonyms"
    assert client.get(mapping, headers=researcher).status_code == 403
    assert client.get(mapping, headers=admin).json["items"] == [
        {"patient_key": "id:PID1", "pseudonym": "RES-A", "shift_days": -40}
    ]
    actions = audit_actions(app)
    for expected in (
        ("export_request", "success", "researcher@example.org"),
        ("export_approve", "success", "admin@example.org"),
        ("export_download", "success", "researcher@example.org"),
        ("export_download", "denied", "other-researcher@example.org"),
        ("view_pseudonyms", "success", "admin@example.org"),
    ):
        assert expected in actions


def test_research_pages_count_request_and_decide(app: Flask, dispatcher) -> None:
    researcher = app.test_client()
    sign_in(researcher, "researcher")
    page = researcher.get("/research")
    assert page.status_code == 200
    token = csrf_token_of(page.get_data(as_text=True))
    form = {
        "csrf_token": token,
        "modality": "MR",
        "option-modified-dates": "on",
        "purpose": "Brain volume study, retrospective",
    }
    counted = researcher.post("/research/size", data=form)
    assert "10 studies of 10 patients" in counted.get_data(as_text=True)
    assert "Patient0" not in counted.get_data(as_text=True)
    submitted = researcher.post("/research/requests", data=form)
    assert submitted.status_code == 302
    with app.app_context():
        export = db.session.scalar(select(ResearchExport))
        assert (export.profile, export.cohort["modality"]) == ("basic,modified-dates", "MR")

    admin = app.test_client()
    sign_in(admin, "admin")
    page = admin.get("/research").get_data(as_text=True)
    assert "Approve" in page and "researcher@example.org" in page
    decision = f"/research/exports/{export.id}/decision"
    token = csrf_token_of(page)
    refused = admin.post(decision, data={"csrf_token": token, "decision": "reject"})
    assert refused.status_code == 302
    rejected = admin.post(
        decision, data={"csrf_token": token, "decision": "reject", "reason": "no ethics approval"}
    )
    assert rejected.status_code == 302
    with app.app_context():
        assert db.session.get(ResearchExport, export.id).state == "rejected"
    assert dispatcher.exports == []
    assert "rejected: no ethics approval" in researcher.get("/research").get_data(as_text=True)
