"""Reports through the API against a real Orthanc: draft -> preliminary -> final -> addendum,
SRs read back by WADO-RS and checked with dciodvfy, conflicts, who sees what, the outbox
with the archive down, and SRs from elsewhere shown as external reports."""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from config.settings import Settings, load_settings
from core.accounts import Role
from core.evidence import StudyHeader, read_study_evidence
from core.sr import SignedReport, build_report_sr, encode_part10
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.models.accounts import AuditEvent
from storage.models.reports import ReportDocument
from storage.models.studies import Study, StudyEvent
from tasks.archive import fetch_archived_studies
from tasks.database import load_recorded_series, record_studies
from tasks.reports import send_pending_reports
from tests.support.reports import (
    dciodvfy_errors,
    evidence_uids,
    fetch_sr,
    ingest,
    observer_name,
    part10_of,
    predecessor_uids,
    read_part10,
    section_texts,
    store_study,
    wait_until_archived,
)
from tests.support.services import find_free_port
from tests.support.studies import clone_study
from tests.support.users import PASSWORD

pytestmark = pytest.mark.requires("dciodvfy")

NOW = datetime.datetime.now(datetime.UTC)
REFERRER_PN = "Šimůnek^Zdeňka"
DRAFT = {
    "clinical_information": "Кашель, лихорадка.",
    "technique": "PA and lateral chest radiographs.",
    "findings": "Lungs clear. Pas d'épanchement pleural.",
    "impression": "No acute cardiopulmonary process.",
}


@dataclass
class Setup:
    app: Flask
    settings: Settings
    study_uid: str
    orthanc_id: str
    image_uids: set[str]


def make_portal(settings: Settings, password_hash: str, monkeypatch) -> Flask:
    monkeypatch.setattr("storage.accounts.hash_password", lambda password: password_hash)
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    with app.app_context():
        create_user(
            db.session,
            "rad@example.org",
            PASSWORD,
            Role.RADIOLOGIST,
            NOW,
            display_name="Yūko Nakamura",
        )
        create_user(db.session, "rad2@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
        create_user(db.session, "admin@example.org", PASSWORD, Role.ADMIN, NOW)
        create_user(db.session, "manager@example.org", PASSWORD, Role.MANAGER, NOW)
        create_user(
            db.session, "ref@example.org", PASSWORD, Role.REFERRER, NOW, dicom_name=REFERRER_PN
        )
        create_user(
            db.session,
            "other-ref@example.org",
            PASSWORD,
            Role.REFERRER,
            NOW,
            dicom_name="Other^Doctor",
        )
        db.session.commit()
    return app


@pytest.fixture
def setup(
    database_url: str,
    orthanc_env: dict[str, str],
    archive: ArchiveClient,
    password_hash: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Setup]:
    settings = load_settings({**orthanc_env, "PACS_DATABASE_URL": database_url})
    app = make_portal(settings, password_hash, monkeypatch)
    study_uid, orthanc_id, image_uids = store_study(
        archive, PatientName="Ødegård^Åse", ReferringPhysicianName=REFERRER_PN
    )
    ingest(app, archive, orthanc_id)
    yield Setup(app, settings, study_uid, orthanc_id, image_uids)


def token_for(client: FlaskClient, email: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def test_a_report_from_draft_to_final_to_addendum(setup: Setup, archive: ArchiveClient) -> None:
    client = setup.app.test_client()
    rad = token_for(client, "rad@example.org")
    url = f"/api/v1/studies/{setup.study_uid}/report"

    empty = client.get(url, headers=rad)
    assert empty.status_code == 200 and empty.json["status"] is None
    assert empty.headers["ETag"] == '"0"'

    saved = client.put(url, json=DRAFT, headers={**rad, "If-Match": '"0"'})
    assert saved.status_code == 200, saved.json
    assert (
        saved.json["status"] == "draft" and saved.json["sections"]["findings"] == DRAFT["findings"]
    )
    etag = saved.headers["ETag"]
    assert etag == '"1"'

    # Another tab still holding version 0, or no version at all: refused, nothing lost.
    stale = client.put(url, json={"findings": "overwrite"}, headers={**rad, "If-Match": '"0"'})
    assert stale.status_code == 409
    assert "changed elsewhere" in stale.json["error"]
    assert client.put(url, json={"findings": "blind"}, headers=rad).status_code == 428
    assert client.put(
        url, json={"colour": "red"}, headers={**rad, "If-Match": etag}
    ).status_code in (
        400,
        422,
    )
    assert client.get(url, headers=rad).json["sections"]["findings"] == DRAFT["findings"]

    # Nobody else writes it; a referrer does not see a draft; a manager never sees report text.
    rad2 = token_for(client, "rad2@example.org")
    other = client.put(url, json=DRAFT, headers={**rad2, "If-Match": etag})
    assert other.status_code == 403
    assert client.post(f"{url}/finalize", headers=rad2).status_code == 403
    admin = token_for(client, "admin@example.org")
    assert client.get(url, headers=admin).json["status"] == "draft"
    assert client.put(url, json=DRAFT, headers={**admin, "If-Match": etag}).status_code == 403
    ref = token_for(client, "ref@example.org")
    assert client.get(url, headers=ref).status_code == 404
    assert client.get(f"/studies/{setup.study_uid}/report.pdf", headers=ref).status_code == 404
    assert client.get(url, headers=token_for(client, "manager@example.org")).status_code == 403

    preliminary = client.post(f"{url}/preliminary", headers={**rad, "If-Match": etag})
    assert preliminary.status_code == 201, preliminary.json
    assert preliminary.json["status"] == "preliminary"
    assert wait_until_archived(client, url, rad)["archived"] is True
    assert client.get(url, headers=ref).status_code == 404

    etag = preliminary.headers["ETag"]
    revised = {**DRAFT, "impression": "No acute cardiopulmonary process. Ünïcode ✓."}
    saved = client.put(url, json=revised, headers={**rad, "If-Match": etag})
    assert saved.status_code == 200 and saved.json["status"] == "preliminary"

    final = client.post(f"{url}/finalize", headers={**rad, "If-Match": saved.headers["ETag"]})
    assert final.status_code == 201, final.json
    assert final.json["status"] == "final"
    assert wait_until_archived(client, url, rad)["archived"] is True
    etag = final.headers["ETag"]

    after = client.put(url, json={"findings": "changed"}, headers={**rad, "If-Match": etag})
    assert after.status_code == 409
    assert "final" in after.json["error"]
    assert client.post(f"{url}/finalize", headers={**rad, "If-Match": etag}).status_code == 409
    assert client.post(f"{url}/addenda", json={"text": ""}, headers=rad).status_code in (400, 422)

    addendum = client.post(
        f"{url}/addenda",
        json={"text": "Kleiner Rundherd rechts apikal: CT empfohlen."},
        headers=rad,
    )
    assert addendum.status_code == 201, addendum.json
    documents = wait_until_archived(client, url, rad)["documents"]
    assert [d["kind"] for d in documents] == ["preliminary", "final", "addendum"]
    assert all(d["archived"] for d in documents)

    # The referrer now reads the final report, with its addendum, and gets the PDF.
    seen = client.get(url, headers=ref)
    assert seen.status_code == 200 and seen.json["status"] == "final"
    assert seen.json["sections"]["impression"] == revised["impression"]
    assert client.get(url, headers=token_for(client, "other-ref@example.org")).status_code == 404
    pdf = client.get(f"/studies/{setup.study_uid}/report.pdf", headers=ref)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    page = client.get(f"/studies/{setup.study_uid}/report", headers=ref).get_data(as_text=True)
    assert "Kleiner Rundherd rechts apikal" in page and "Nakamura, Yūko" in page
    assert "archiving…" not in page
    assert all(f"SR {d['sop_instance_uid']}" in page for d in documents)

    # What the archive holds: three valid SRs saying what was signed, chained.
    sr = {}
    for document in documents:
        part10 = fetch_sr(
            archive, setup.study_uid, document["series_instance_uid"], document["sop_instance_uid"]
        )
        assert dciodvfy_errors(part10) == [], document["kind"]
        sr[document["kind"]] = read_part10(part10)
    assert sr["preliminary"].CompletionFlag == "PARTIAL"
    assert sr["preliminary"].VerificationFlag == "UNVERIFIED"
    assert section_texts(sr["preliminary"])["Impressions"] == [DRAFT["impression"]]
    for kind in ("final", "addendum"):
        doc = sr[kind]
        assert doc.SpecificCharacterSet == "ISO_IR 192"
        assert doc.CompletionFlag == "COMPLETE" and doc.VerificationFlag == "VERIFIED"
        assert str(doc.VerifyingObserverSequence[0].VerifyingObserverName) == "Nakamura^Yūko"
        assert observer_name(doc) == "Nakamura^Yūko"
        assert section_texts(doc)["Impressions"] == [revised["impression"]]
        assert section_texts(doc)["Clinical Information"] == [DRAFT["clinical_information"]]
        assert section_texts(doc)["Findings"] == [DRAFT["findings"]]
        assert evidence_uids(doc) == setup.image_uids
        assert str(doc.PatientName) == "Ødegård^Åse"
    assert predecessor_uids(sr["final"]) == {sr["preliminary"].SOPInstanceUID}
    assert predecessor_uids(sr["addendum"]) == {sr["final"].SOPInstanceUID}
    assert section_texts(sr["addendum"])["Addendum"][0].startswith("Kleiner Rundherd")

    with setup.app.app_context():
        study = db.session.scalar(select(Study).where(Study.study_instance_uid == setup.study_uid))
        assert study.status == "amended"
        events = [
            (e.kind, e.user_email)
            for e in db.session.scalars(select(StudyEvent).where(StudyEvent.study_id == study.id))
            if e.kind in ("report_started", "preliminary", "final", "addendum")
        ]
        assert events == [
            ("report_started", "rad@example.org"),
            ("preliminary", "rad@example.org"),
            ("final", "rad@example.org"),
            ("addendum", "rad@example.org"),
        ]
        actions = set(
            db.session.scalars(
                select(AuditEvent.action).where(AuditEvent.study_uid == setup.study_uid)
            )
        )
        assert {"report_save", "report_preliminary", "report_final", "report_addendum"} <= actions


def test_study_status_follows_the_report(setup: Setup) -> None:
    client = setup.app.test_client()
    rad = token_for(client, "rad@example.org")
    url = f"/api/v1/studies/{setup.study_uid}/report"

    def status() -> str:
        return client.get(f"/api/v1/studies/{setup.study_uid}", headers=rad).json["status"]

    assert status() == "received"
    etag = client.put(url, json=DRAFT, headers={**rad, "If-Match": '"0"'}).headers["ETag"]
    assert status() == "in_progress"
    study = client.get(f"/api/v1/studies/{setup.study_uid}", headers=rad).json
    assert study["assignee"] == "rad@example.org"  # writing the draft took the study
    assert client.post(f"{url}/finalize", headers={**rad, "If-Match": etag}).status_code == 201
    assert status() == "final"


def test_signing_needs_findings_or_impression(setup: Setup) -> None:
    client = setup.app.test_client()
    rad = token_for(client, "rad@example.org")
    url = f"/api/v1/studies/{setup.study_uid}/report"
    etag = client.put(url, json={"technique": "CT"}, headers={**rad, "If-Match": '"0"'}).headers[
        "ETag"
    ]
    refused = client.post(f"{url}/finalize", headers={**rad, "If-Match": etag})
    assert refused.status_code == 422
    assert "findings or the impression" in refused.json["error"]


def test_signing_succeeds_with_the_archive_down_and_the_outbox_delivers(
    setup: Setup,
    archive: ArchiveClient,
    orthanc_env: dict[str, str],
    password_hash: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same database, but a portal whose archive is a closed port.
    down = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": setup.settings.database_url,
            "PACS_ORTHANC_URL": f"http://127.0.0.1:{find_free_port()}",
        }
    )
    app = create_app({"PACS_SETTINGS": down, "TESTING": True})
    client = app.test_client()
    rad = token_for(client, "rad@example.org")
    url = f"/api/v1/studies/{setup.study_uid}/report"
    etag = client.put(url, json=DRAFT, headers={**rad, "If-Match": '"0"'}).headers["ETag"]

    # The portal dies between the commit of a signature and its delivery: the row stays.
    delivery = app.extensions["pacs_report_delivery"]
    with monkeypatch.context() as patched:
        patched.setattr(delivery, "submit", lambda document_id: None)
        preliminary = client.post(f"{url}/preliminary", headers={**rad, "If-Match": etag})
    assert preliminary.status_code == 201, preliminary.json
    # The next signature is tried at once, and the archive is down.
    final = client.post(f"{url}/finalize", headers={**rad, "If-Match": preliminary.headers["ETag"]})
    assert final.status_code == 201, final.json
    assert final.json["status"] == "final" and final.json["archived"] is False
    documents = final.json["documents"]
    with app.app_context():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = db.session.scalars(select(ReportDocument).order_by(ReportDocument.sequence))
            attempts = [(row.attempts, row.last_error) for row in rows]
            db.session.rollback()
            if attempts[1][0]:
                break
            time.sleep(0.1)
    assert attempts[0] == (0, "")
    assert attempts[1][0] == 1 and "ArchiveUnavailable" in attempts[1][1]
    page = client.get(f"/studies/{setup.study_uid}/report", headers=rad).get_data(as_text=True)
    assert page.count("archiving…") == 2

    # The archive is back: the outbox flow's task sends both, in order, with the full evidence.
    outcome = send_pending_reports.fn(setup.settings)
    assert outcome.sent == 2 and outcome.failed == {}
    for document in documents:
        part10 = fetch_sr(
            archive, setup.study_uid, document["series_instance_uid"], document["sop_instance_uid"]
        )
        assert dciodvfy_errors(part10) == []
        sr = read_part10(part10)
        assert section_texts(sr)["Findings"] == [DRAFT["findings"]]
        assert evidence_uids(sr) == setup.image_uids
    assert client.get(url, headers=rad).json["archived"] is True
    # Exactly once: nothing is left to send, and the archive holds one instance a document.
    assert send_pending_reports.fn(setup.settings).sent == 0
    series = archive.find("Series", {"SeriesInstanceUID": documents[0]["series_instance_uid"]})
    assert len(series) == 1 and len(series[0]["Instances"]) == len(documents) == 2

    # Sending again (a retry after a lost acknowledgement) makes no second document.
    with app.app_context():
        db.session.scalar(select(ReportDocument)).archived_at = None
        db.session.commit()
    assert send_pending_reports.fn(setup.settings).sent == 1
    series = archive.find("Series", {"SeriesInstanceUID": documents[0]["series_instance_uid"]})
    assert len(series) == 1 and len(series[0]["Instances"]) == 2


def test_a_late_series_joins_a_reported_study(
    setup: Setup, archive: ArchiveClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the pipeline's own tasks: only the series the study did not have are read
    from the archive (the late one, and our SR's), the reported series are not read again."""
    client = setup.app.test_client()
    rad = token_for(client, "rad@example.org")
    url = f"/api/v1/studies/{setup.study_uid}/report"
    etag = client.put(url, json=DRAFT, headers={**rad, "If-Match": '"0"'}).headers["ETag"]
    assert client.post(f"{url}/finalize", headers={**rad, "If-Match": etag}).status_code == 201
    assert wait_until_archived(client, url, rad)["archived"] is True
    with setup.app.app_context():
        before = db.session.scalar(select(Study))
        received_at, instances = before.received_at, before.instance_count

    # A series arrives after the report (a reconstruction sent late): the study is updated.
    late = clone_study("CR", limit=1, PatientName="Ødegård^Åse", ReferringPhysicianName=REFERRER_PN)
    late[0].StudyInstanceUID = setup.study_uid
    archive.upload_instance(part10_of(late[0]))
    read: list[str] = []
    stream = ArchiveClient.stream_instances_tags

    def spy(self: ArchiveClient, resource: str):
        read.append(resource)
        return stream(self, resource)

    monkeypatch.setattr(ArchiveClient, "stream_instances_tags", spy)
    deadline = time.monotonic() + 30  # what the pipeline reads on the stable event
    while not archive.get_study(setup.orthanc_id)["IsStable"] and time.monotonic() < deadline:
        time.sleep(0.2)
    recorded = load_recorded_series.fn(setup.settings, [setup.orthanc_id])
    fetched = fetch_archived_studies.fn(setup.settings, [setup.orthanc_id], recorded)
    outcome = record_studies.fn(setup.settings, fetched.studies).outcomes[0]
    assert outcome.outcome == "updated" and outcome.instances == 2
    series_ids = {
        s.series_instance_uid: s.orthanc_id for s in archive.list_study_series(setup.orthanc_id)
    }
    with setup.app.app_context():
        sr_series = set(db.session.scalars(select(ReportDocument.series_instance_uid)))
    assert sorted(read) == sorted(
        f"/series/{series_ids[uid]}" for uid in {late[0].SeriesInstanceUID, *sr_series}
    ), "only the series the study did not have are read"
    with setup.app.app_context():
        study = db.session.scalar(select(Study))
        assert study.status == "final", "a late series does not reopen the report"
        assert study.instance_count == instances + 2  # the late image and our own SR
        assert study.received_at == received_at, "turnaround counts from the first completion"
        assert late[0].SeriesInstanceUID in {s.series_instance_uid for s in study.series}

    # An addendum's SR names the late image as evidence too, from what ingestion recorded.
    addendum = client.post(f"{url}/addenda", json={"text": "Late series reviewed."}, headers=rad)
    assert addendum.status_code == 201, addendum.json
    document = wait_until_archived(client, url, rad)["documents"][-1]
    part10 = fetch_sr(
        archive, setup.study_uid, document["series_instance_uid"], document["sop_instance_uid"]
    )
    assert dciodvfy_errors(part10) == []
    assert evidence_uids(read_part10(part10)) == setup.image_uids | {late[0].SOPInstanceUID}


def test_reports_from_elsewhere_show_as_external_reports(
    setup: Setup, archive: ArchiveClient
) -> None:
    client = setup.app.test_client()
    rad = token_for(client, "rad@example.org")
    url = f"/api/v1/studies/{setup.study_uid}/report"
    etag = client.put(url, json=DRAFT, headers={**rad, "If-Match": '"0"'}).headers["ETag"]
    ours = client.post(f"{url}/finalize", headers={**rad, "If-Match": etag}).json["documents"][0]

    # Another system's report on the same study.
    header, evidence = read_study_evidence(archive.get_study_instances_tags(setup.orthanc_id))
    foreign = SignedReport(
        kind="final",
        sections={"impression": "Outside read: normal."},
        author_name="Elsewhere^Doctor",
        signed_at=NOW,
        series_instance_uid="1.2.826.0.1.3680043.10.543.1",
        sop_instance_uid="1.2.826.0.1.3680043.10.543.1.1",
        instance_number=1,
    )
    sr = build_report_sr(foreign, StudyHeader(**{**header.__dict__}), evidence)
    sr.SeriesDescription = "Outside hospital report"
    archive.store_instances([encode_part10(sr)])
    ingest(setup.app, archive, setup.orthanc_id)

    page = client.get(f"/studies/{setup.study_uid}", headers=rad).get_data(as_text=True)
    assert "External reports" in page
    assert 'data-series-uid="1.2.826.0.1.3680043.10.543.1"' in page
    assert f'data-series-uid="{ours["series_instance_uid"]}"' not in page
    assert "1.2.826.0.1.3680043.10.543.1/preview.png" not in page  # no image to render
    # Ingesting the study again with both SRs in it keeps the signed report's status.
    assert client.get(f"/api/v1/studies/{setup.study_uid}", headers=rad).json["status"] == "final"


def test_admins_edit_templates_and_the_editor_offers_them(setup: Setup) -> None:
    client = setup.app.test_client()
    admin = token_for(client, "admin@example.org")
    page = client.get("/admin/report-templates", headers=admin).get_data(as_text=True)
    for name in ("CT chest", "CT head", "MR brain", "CR/DX chest", "US abdomen", "Generic"):
        assert name in page
    form = {
        "name": "CR/DX chest",
        "modality": "CR,DX",
        "body_part": "CHEST",
        "technique": "Einzelaufnahme p.a. — édité",
        "findings": "Lungs: ...",
    }
    saved = client.post("/admin/report-templates/xr-chest", data=form, headers=admin)
    assert saved.status_code == 302
    created = client.post(
        "/admin/report-templates/new",
        data={"key": "ct-abdomen", "name": "CT abdomen", "modality": "CT", "body_part": "ABDOMEN"},
        headers=admin,
    )
    assert created.status_code == 302
    refused = client.post(
        "/admin/report-templates/new", data={"key": "no spaces!", "name": "x"}, headers=admin
    )
    assert refused.status_code == 302  # back to the list with the reason
    rad = token_for(client, "rad@example.org")
    assert (
        client.post("/admin/report-templates/xr-chest", data=form, headers=rad).status_code == 403
    )

    editor = client.get(f"/studies/{setup.study_uid}/report/edit", headers=rad)
    html = editor.get_data(as_text=True)
    assert editor.status_code == 200
    data = re.search(r'<script type="application/json" id="report-templates">(.*?)</script>', html)
    templates = json.loads(data.group(1))
    assert templates["xr-chest"]["sections"]["technique"] == "Einzelaufnahme p.a. — édité"
    assert templates["ct-abdomen"]["name"] == "CT abdomen"
    assert 'value="xr-chest" data-suggested' in html  # a CR chest study
    with setup.app.app_context():
        actions = set(db.session.scalars(select(AuditEvent.action)))
    assert "report_template_save" in actions
