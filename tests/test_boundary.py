"""The platform's boundary under hostile input: identity changes after reporting, uploads
refused before their body is read, streamed ZIP members, CSV formulas, secret files,
access logs without query strings, and archive errors kept from browsers.

The archive is a real Orthanc (the session's); gunicorn runs the real portal.
"""

from __future__ import annotations

import copy
import datetime
import io
import logging
import multiprocessing
import os
import re
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from config.settings import Settings, load_settings, read_secret, write_private_file
from core.accounts import Role, hash_password
from core.csv_cells import SafeCsvWriter, neutralise_formula
from core.export_manifest import InstanceSummary, build_manifest
from core.identity import (
    IdentityChange,
    RecordedIdentity,
    accepted_identity,
    acknowledge,
    find_identity_changes,
)
from core.import_rules import HEAD_BYTES, NotImportable, Outcome, Refusal
from core.ingest import assess_study
from core.records import ArchivedStudy
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.import_sender import Candidate, import_paths, read_candidate
from storage.models.accounts import AuditEvent
from storage.models.quarantine import QuarantinedStudy
from storage.models.studies import Study
from tasks.database import make_policy, record_study
from tests.support.databases import new_database
from tests.support.reports import part10_of, wait_until_archived
from tests.support.services import find_free_port, run_pacs
from tests.support.studies import clone_study
from tests.support.tools import require_tool

PASSWORD = "a-long-enough-passphrase"
NOW = datetime.datetime.now(datetime.UTC)
REFERRER_PN = "Referring^Rita"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


def make_portal(settings: Settings, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setattr("storage.accounts.hash_password", lambda password: password_hash)
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    with app.app_context():
        for email, role, dicom_name in (
            ("rad@example.org", Role.RADIOLOGIST, ""),
            ("admin@example.org", Role.ADMIN, ""),
            ("ref@example.org", Role.REFERRER, REFERRER_PN),
            ("new-ref@example.org", Role.REFERRER, "Newcomer^Nora"),
        ):
            name = f"{role.title()} Example"
            create_user(
                db.session, email, PASSWORD, role, NOW, display_name=name, dicom_name=dicom_name
            )
        db.session.commit()
    return app


def token_for(client: FlaskClient, email: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


# -- identity changes after reporting: the rules ------------------------------------------

RECORDED = RecordedIdentity(
    status="final",
    values={
        "patient_id": "P-1",
        "issuer_of_patient_id": "HOSP",
        "patient_name": "Doe^Jane",
        "patient_birth_date": datetime.date(1970, 1, 2),
        "patient_sex": "F",
        "referring_physician": REFERRER_PN,
    },
)
SAME = {
    "0010,0020": "P-1",
    "0010,0021": "HOSP",
    "0010,0010": "Doe^Jane",
    "0010,0030": "19700102",
    "0010,0040": "F",
    "0008,0090": REFERRER_PN,
}


def test_identity_changes_name_every_field_old_to_new() -> None:
    assert find_identity_changes(RECORDED, [SAME, SAME]) == []
    changed = {
        **SAME,
        "0010,0020": "P-2",
        "0010,0021": "OTHER",
        "0010,0010": "Roe^Richard",
        "0010,0030": "19800101",
        "0010,0040": "M",
        "0008,0090": "Other^Doctor",
    }
    changes = find_identity_changes(RECORDED, [SAME, changed])
    assert [c.describe() for c in changes] == [
        "Patient ID 'P-1' -> 'P-2'",
        "Issuer of Patient ID 'HOSP' -> 'OTHER'",
        "Patient name 'Doe^Jane' -> 'Roe^Richard'",
        "Patient birth date '19700102' -> '19800101'",
        "Patient sex 'F' -> 'M'",
        "Referring physician 'Referring^Rita' -> 'Other^Doctor'",
    ]


def test_empty_values_and_acknowledged_ones_are_no_change() -> None:
    # Our own SR states no issuer; a malformed birth date is no date.
    silent = {**SAME, "0010,0021": "", "0010,0030": "1970-01-02", "0008,0090": ""}
    assert find_identity_changes(RECORDED, [silent]) == []
    renamed = {**SAME, "0010,0010": "Doe^Janet"}
    change = IdentityChange("patient_name", "Doe^Jane", "Doe^Janet")
    assert find_identity_changes(RECORDED, [renamed]) == [change]
    decided = RecordedIdentity(
        RECORDED.status, RECORDED.values, acknowledge(RECORDED.acknowledged, [change])
    )
    assert find_identity_changes(decided, [SAME, renamed]) == []
    # ... but a third name is a new change: never silent.
    third = {**SAME, "0010,0010": "Dough^Jean"}
    assert [c.new for c in find_identity_changes(decided, [renamed, third])] == ["Dough^Jean"]


def test_accepting_needs_one_new_value_per_field() -> None:
    one = [IdentityChange("patient_birth_date", "19700102", "19700201")]
    assert accepted_identity(one) == {"patient_birth_date": datetime.date(1970, 2, 1)}
    two = [
        IdentityChange("patient_name", "Doe^Jane", "A^B"),
        IdentityChange("patient_name", "Doe^Jane", "C^D"),
    ]
    with pytest.raises(ValueError, match="more than one new value"):
        accepted_identity(two)


def test_only_reported_studies_are_held_and_they_keep_their_identity() -> None:
    instance = {
        **SAME,
        "0010,0010": "Roe^Richard",
        "0020,000d": "1.2.3",
        "0020,000e": "1.2.3.4",
        "0008,0018": "1.2.3.4.5",
        "0008,0016": "1.2.840.10008.5.1.4.1.1.7",
        "0008,0060": "OT",
        "0008,0020": "20260101",
        "0008,0050": "A1",
    }
    study = ArchivedStudy("o-1", "20261130T100000", True, [instance])
    for status, held in (("received", False), ("in_progress", False), ("preliminary", True)):
        recorded = RecordedIdentity(status, RECORDED.values)
        assessment = assess_study(study, recorded=recorded)
        codes = [f.code for f in assessment.findings]
        assert ("IDENTITY_CHANGED" in codes) is held
        assert assessment.record.patient_name == ("Doe^Jane" if held else "Roe^Richard")
    # A release overrides validation errors, never an identity change.
    released = assess_study(
        study, recorded=RecordedIdentity("final", RECORDED.values), released=True
    )
    assert released.quarantined and released.identity_changes


# -- identity changes after reporting: against the archive ---------------------------------


@dataclass
class Reported:
    app: Flask
    settings: Settings
    datasets: list[Dataset]
    study_uid: str
    orthanc_id: str


def store(archive: ArchiveClient, datasets: list[Dataset]) -> str:
    results = [archive.upload_instance(part10_of(ds)) for ds in datasets]
    return results[0].study_id


def reingest(reported: Reported, archive: ArchiveClient, orthanc_id: str) -> str:
    """What the ingestion flow does for a stable study (its task's function, no Prefect)."""
    study = replace(archive.get_archived_study(orthanc_id), is_stable=True)
    return record_study(reported.settings, study, make_policy(reported.settings)).outcome


def another_instance(reported: Reported, **attributes: str) -> Dataset:
    """One more instance of the reported study's series, with `attributes` changed."""
    ds = copy.deepcopy(reported.datasets[0])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


@pytest.fixture
def reported(
    tmp_path: Path,
    orthanc_env: dict[str, str],
    archive: ArchiveClient,
    password_hash: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Reported:
    """A CR study in the archive, ingested, its report signed final (SR archived)."""
    settings = load_settings(
        {**orthanc_env, "PACS_DATABASE_URL": new_database(tmp_path / "pacs.sqlite3")}
    )
    app = make_portal(settings, password_hash, monkeypatch)
    datasets = clone_study(
        "CR",
        PatientName="Doe^Jane",
        PatientID=f"P-{generate_uid()[-8:]}",
        ReferringPhysicianName=REFERRER_PN,
    )
    setup = Reported(
        app, settings, datasets, datasets[0].StudyInstanceUID, store(archive, datasets)
    )
    assert reingest(setup, archive, setup.orthanc_id) == "ingested"
    client = app.test_client()
    rad = token_for(client, "rad@example.org")
    url = f"/api/v1/studies/{setup.study_uid}/report"
    saved = client.put(
        url,
        json={"findings": "Clear.", "impression": "Normal."},
        headers={**rad, "If-Match": '"0"'},
    )
    assert saved.status_code == 200, saved.json
    final = client.post(f"{url}/finalize", headers={**rad, "If-Match": saved.headers["ETag"]})
    assert final.status_code == 201, final.json
    assert wait_until_archived(client, url, rad)["archived"] is True
    # Our own SR, now in the study, is no identity change.
    assert reingest(setup, archive, setup.orthanc_id) == "updated"
    return setup


def load_study(reported: Reported) -> Study:
    with reported.app.app_context():
        return db.session.scalar(
            select(Study).where(Study.study_instance_uid == reported.study_uid)
        )


def load_entry(reported: Reported, orthanc_id: str) -> QuarantinedStudy:
    with reported.app.app_context():
        return db.session.scalar(
            select(QuarantinedStudy).where(QuarantinedStudy.orthanc_id == orthanc_id)
        )


def test_a_renamed_patient_after_the_final_report_is_held_until_an_admin_keeps_it(
    reported: Reported, archive: ArchiveClient
) -> None:
    client = reported.app.test_client()
    rad, ref = token_for(client, "rad@example.org"), token_for(client, "ref@example.org")
    admin = token_for(client, "admin@example.org")
    report_url = f"/api/v1/studies/{reported.study_uid}/report"
    assert client.get(report_url, headers=ref).status_code == 200

    store(archive, [another_instance(reported, PatientName="Roe^Richard")])
    assert reingest(reported, archive, reported.orthanc_id) == "quarantined"

    entry = load_entry(reported, reported.orthanc_id)
    assert entry.state == "open"
    [reason] = [r for r in entry.reasons if r["code"] == "IDENTITY_CHANGED"]
    assert "Patient name 'Doe^Jane' -> 'Roe^Richard'" in reason["message"]
    # The study, its report, its recorded identity and its readers are as they were.
    study = load_study(reported)
    assert (study.status, study.patient_name) == ("final", "Doe^Jane")
    assert client.get(report_url, headers=ref).status_code == 200
    listed = client.get(f"/api/v1/studies/{reported.study_uid}", headers=rad)
    assert listed.status_code == 200 and listed.json["status"] == "final"
    assert "Roe" not in str(listed.json)
    # Ingesting again changes nothing while the admin has not decided.
    assert reingest(reported, archive, reported.orthanc_id) == "quarantined"
    assert load_study(reported).patient_name == "Doe^Jane"

    release = f"/api/v1/quarantine/{reported.orthanc_id}/release"
    undecided = client.post(release, headers=admin)
    assert (
        undecided.status_code == 409 and "keeping the recorded identity" in undecided.json["error"]
    )
    assert client.post(release, json={"identity": "maybe"}, headers=admin).status_code == 422
    kept = client.post(release, json={"identity": "keep"}, headers=admin)
    assert kept.status_code == 202, kept.json
    assert reingest(reported, archive, reported.orthanc_id) == "updated"
    study = load_study(reported)
    assert (study.status, study.patient_name) == ("final", "Doe^Jane")
    assert client.get(report_url, headers=ref).status_code == 200
    with reported.app.app_context():
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "quarantine_release")
        )
    assert event.user_email == "admin@example.org" and event.study_uid == reported.study_uid
    assert event.detail == "kept the recorded identity: Patient name 'Doe^Jane' -> 'Roe^Richard'"

    # A third name later is a new change, held again: never silent.
    store(archive, [another_instance(reported, PatientName="Dough^Jean")])
    assert reingest(reported, archive, reported.orthanc_id) == "quarantined"
    assert "'Doe^Jane' -> 'Dough^Jean'" in str(load_entry(reported, reported.orthanc_id).reasons)


def test_a_new_referrer_gets_the_study_only_when_an_admin_accepts_it(
    reported: Reported, archive: ArchiveClient
) -> None:
    client = reported.app.test_client()
    ref, new_ref = token_for(client, "ref@example.org"), token_for(client, "new-ref@example.org")
    report_url = f"/api/v1/studies/{reported.study_uid}/report"
    store(archive, [another_instance(reported, ReferringPhysicianName="Newcomer^Nora")])
    assert reingest(reported, archive, reported.orthanc_id) == "quarantined"
    reason = str(load_entry(reported, reported.orthanc_id).reasons)
    assert "Referring physician 'Referring^Rita' -> 'Newcomer^Nora'" in reason
    assert client.get(report_url, headers=ref).status_code == 200
    assert client.get(report_url, headers=new_ref).status_code == 404

    # The admin page offers the decision; accepting moves the study to the new referrer.
    page = reported.app.test_client()
    login = page.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    page.post(
        "/login", data={"email": "admin@example.org", "password": PASSWORD, "csrf_token": token}
    )
    html = page.get("/admin/quarantine").get_data(as_text=True)
    assert "Release, keep recorded identity" in html and "Release, accept new identity" in html
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    page.post(f"/admin/quarantine/{reported.orthanc_id}/release-accept", data={"csrf_token": token})
    assert load_entry(reported, reported.orthanc_id).state == "released"
    assert load_study(reported).referring_physician == "Newcomer^Nora"
    assert client.get(report_url, headers=new_ref).status_code == 200
    assert client.get(report_url, headers=ref).status_code == 404
    assert reingest(reported, archive, reported.orthanc_id) == "updated"
    assert load_study(reported).referring_physician == "Newcomer^Nora"


def test_another_patient_id_under_the_reported_study_uid_is_held(
    reported: Reported, archive: ArchiveClient
) -> None:
    original_id = reported.datasets[0].PatientID
    # Orthanc files it as another study (its ids hash the Patient ID with the Study UID).
    stray = store(archive, [another_instance(reported, PatientID="P-OTHER")])
    assert stray != reported.orthanc_id
    assert reingest(reported, archive, stray) == "quarantined"
    reasons = str(load_entry(reported, stray).reasons)
    assert f"Patient ID '{original_id}' -> 'P-OTHER'" in reasons
    study = load_study(reported)
    assert (study.orthanc_id, study.patient_id, study.status) == (
        reported.orthanc_id,
        original_id,
        "final",
    )


def test_the_command_line_releases_with_a_decision_too(
    reported: Reported, archive: ArchiveClient, orthanc_env: dict[str, str], prefect_api: str
) -> None:
    old_sex = reported.datasets[0].PatientSex
    new_sex = "F" if old_sex == "M" else "M"
    store(archive, [another_instance(reported, PatientSex=new_sex)])
    assert reingest(reported, archive, reported.orthanc_id) == "quarantined"
    env = {**orthanc_env, "PACS_DATABASE_URL": reported.settings.database_url}
    change = f"Patient sex '{old_sex}' -> '{new_sex}'"
    assert change in run_pacs(env, "quarantine", "list").stdout
    undecided = run_pacs(env, "quarantine", "release", reported.study_uid)
    assert undecided.returncode == 1 and "accepting the new one" in undecided.stderr
    accepted = run_pacs(env, "quarantine", "release", reported.study_uid, "--identity", "accept")
    assert accepted.returncode == 0, accepted.stderr
    assert load_study(reported).patient_sex == new_sex
    with reported.app.app_context():
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "quarantine_release")
        )
    assert event.user_email.startswith("cli:")
    assert event.detail == f"accepted the new identity: {change}"


# -- uploads: refused before the body is read -----------------------------------------------


class LazyBody(io.RawIOBase):
    """A request body of `size` bytes made as it is read; counts what was read."""

    def __init__(self, size: int) -> None:
        self.size, self.position = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        count = min(len(buffer), self.size - self.position)
        buffer[:count] = b"x" * count
        self.position += count
        return count


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


BIG = 200 * 1024**2


def post_big(app: Flask, url: str, headers: dict[str, str]) -> tuple[int, int, float]:
    """POST a lazily made 200 MB multipart body straight to the WSGI app (the test client
    wants a seekable body); the status, the bytes the portal read, and the seconds."""
    body = LazyBody(BIG)
    environ = EnvironBuilder(
        url,
        method="POST",
        headers=headers,
        content_type="multipart/form-data; boundary=xxxxxxxx",
    ).get_environ()
    environ.update({"wsgi.input": body, "CONTENT_LENGTH": str(BIG)})
    started = time.perf_counter()
    _, status, _ = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), body.position, time.perf_counter() - started


@pytest.fixture
def upload_app(
    tmp_path: Path, orthanc_env: dict[str, str], password_hash: str, monkeypatch
) -> Flask:
    settings = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": new_database(tmp_path / "pacs.sqlite3"),
            "PACS_IMPORT_MAX_MB": "100",
        }
    )
    return make_portal(settings, password_hash, monkeypatch)


def test_uploads_are_refused_before_their_body_is_read(upload_app: Flask) -> None:
    client = upload_app.test_client()
    ref, rad = token_for(client, "ref@example.org"), token_for(client, "rad@example.org")
    admin = token_for(client, "admin@example.org")
    before = rss_bytes()
    for url in ("/api/v1/imports", "/imports"):
        anonymous = post_big(upload_app, url, {})
        assert anonymous[:2] in ((401, 0), (302, 0)), anonymous
        # Referrers may not import; radiologists only with PACS_IMPORT_RADIOLOGISTS=1.
        for headers in (ref, rad):
            status, read, seconds = post_big(upload_app, url, headers)
            assert (status, read) == (403, 0)
            print(f"{url}: 403 after {seconds * 1000:.1f} ms, {read} bytes read")
        # Beyond PACS_IMPORT_MAX_MB: refused on its declared length.
        assert post_big(upload_app, url, admin)[:2] == (413, 0)
    # A signed-in admin without a CSRF token in the header or the first part: a peek only.
    page = upload_app.test_client()
    login = page.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    page.post(
        "/login", data={"email": "admin@example.org", "password": PASSWORD, "csrf_token": token}
    )
    cookie = page.get_cookie("session")
    status, read, _ = post_big(upload_app, "/imports", {"Cookie": f"session={cookie.value}"})
    assert status in (400, 413) and read <= 4096, (status, read)
    grown = rss_bytes() - before
    print(f"RSS grew by {grown / 1024**2:.1f} MB over {BIG * 9 // 1024**2} MB of refused bodies")
    assert grown < 30 * 1024**2


# -- imports: files and ZIP members streamed ------------------------------------------------


class CountingStream(io.RawIOBase):
    def __init__(self, size: int, head: bytes = b"") -> None:
        self.size, self.head, self.position = size, head, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        count = min(len(buffer), self.size - self.position)
        data = (self.head + b"\x01" * count)[self.position : self.position + count]
        data = data.ljust(count, b"\x01")
        buffer[:count] = data
        self.position += count
        return count


def test_a_large_file_that_is_not_dicom_is_refused_after_its_head() -> None:
    stream = CountingStream(500 * 1024**2)
    candidate = Candidate("video.mp4", stream.size, lambda: io.BufferedReader(stream, 8192))
    with pytest.raises(NotImportable) as refused:
        read_candidate(candidate, 1024**3)
    assert refused.value.refusal == Refusal.NOT_DICOM
    assert stream.position <= HEAD_BYTES + 8192
    oversized = CountingStream(500 * 1024**2)
    candidate = Candidate("big.dcm", oversized.size, lambda: io.BufferedReader(oversized))
    with pytest.raises(NotImportable) as refused:
        read_candidate(candidate, 100 * 1024**2)
    assert refused.value.refusal == Refusal.TOO_LARGE and oversized.position == 0
    # A size that lies (a ZIP header can): the read stops at the limit.
    liar = CountingStream(5 * 1024**2, head=bytes(128) + b"DICM")
    candidate = Candidate("liar.dcm", 10, lambda: io.BufferedReader(liar))
    with pytest.raises(NotImportable, match="PACS_IMPORT_MAX_MB"):
        read_candidate(candidate, 1024**2)
    assert liar.position <= 1024**2 + 1 + 8192


def test_zip_members_over_the_limit_are_refused_per_member(
    tmp_path: Path, settings: Settings
) -> None:
    datasets = clone_study("CR", limit=1)
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("study/image.dcm", part10_of(datasets[0]), zipfile.ZIP_STORED)
        archive.writestr("study/scan.raw", os.urandom(3 * 1024**2), zipfile.ZIP_STORED)
        archive.writestr("study/zeros.bin", bytes(3 * 1024**2), zipfile.ZIP_DEFLATED)
    summary = import_paths(
        [(bundle, "bundle.zip")],
        lambda: ArchiveClient.from_settings(settings),
        max_file_bytes=2 * 1024**2,
    )
    files = {f.name: f for f in summary.files}
    assert files["bundle.zip:study/image.dcm"].outcome == Outcome.STORED
    for name in ("bundle.zip:study/scan.raw", "bundle.zip:study/zeros.bin"):
        assert files[name].refusal == Refusal.TOO_LARGE
        assert files[name].reason == (
            "larger than the 2 MB allowed per file (PACS_IMPORT_MAX_MB): not read"
        )


# -- archive errors: the browser gets a sentence, the log gets Orthanc's words ---------------


def test_archive_errors_reach_the_log_not_the_browser(
    upload_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    settings = upload_app.config["PACS_SETTINGS"]
    with upload_app.app_context():
        db.session.add(
            QuarantinedStudy(
                orthanc_id="no-such-study", state="open", quarantined_at=NOW, checked_at=NOW
            )
        )
        db.session.commit()
    client = upload_app.test_client()
    admin = token_for(client, "admin@example.org")
    with caplog.at_level(logging.ERROR):
        response = client.delete("/api/v1/quarantine/no-such-study", headers=admin)
    assert response.status_code == 502
    answer = str(response.json)
    assert "not found in the archive" in answer and "server log" in answer
    assert settings.orthanc_url not in answer and "/studies/" not in answer
    assert f"{settings.orthanc_url}/studies/no-such-study" in caplog.text

    # A file Orthanc itself refuses: the summary says so, Orthanc's text stays in the log.
    refused = clone_study("CR", limit=1)[0]
    refused.StudyInstanceUID = ""
    with caplog.at_level(logging.WARNING):
        imported = client.post(
            "/api/v1/imports",
            data={"files": [(io.BytesIO(part10_of(refused)), "refused.dcm")]},
            content_type="multipart/form-data",
            headers=admin,
        )
    assert imported.status_code == 201, imported.json
    [result] = imported.json["files"]
    assert result["outcome"] == "rejected" and result["refusal"] == "archive_refused"
    assert result["reason"] == "the archive refused this file (the details are in the log)"
    assert "refused.dcm" in caplog.text and settings.orthanc_url in caplog.text


# -- CSV files: formulas neutralised --------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Doe^Jane", "Doe^Jane"),
        ("", ""),
        (-5, -5),
        (2.5, 2.5),
        (None, None),
    ],
)
def test_formula_cells_get_a_leading_quote(cell: object, written: object) -> None:
    assert neutralise_formula(cell) == written


def test_every_csv_the_platform_writes_goes_through_the_safe_writer() -> None:
    out = io.StringIO()
    SafeCsvWriter(out).write_dicts(["name", "count"], [{"name": "=cmd|' /C calc'!A0", "count": -1}])
    assert out.getvalue().splitlines() == ["name,count", "'=cmd|' /C calc'!A0,-1"]
    summary = InstanceSummary(
        pseudonym="=1+1",
        study_uid="1.2",
        series_uid="1.2.3",
        sop_uid="1.2.3.4",
        modality="CT",
        status="exported",
        reason="",
    )
    assert "'=1+1" in build_manifest([summary])
    writers = []
    for folder in ("core", "storage", "portal", "pacs", "tasks", "flows", "warehouse"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            if re.search(r"csv\.(writer|DictWriter)\(", text) and path.name != "csv_cells.py":
                writers.append(str(path.relative_to(ROOT)))
    assert writers == []


# -- secret files: whole, 0600, one winner ----------------------------------------------------


def test_a_secret_file_is_never_seen_partly_written_or_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "secret"
    seen = []
    real_fsync = os.fsync

    def watch(fd: int) -> None:
        seen.append(target.exists())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watch)
    write_private_file(target, "first\n")
    assert seen and not seen[0]  # not there while the data was being made durable
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "first\n"
    write_private_file(target, "second\n")
    assert target.read_text() == "second\n"
    with pytest.raises(FileExistsError):
        write_private_file(target, "third\n", replace=False)
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]  # no temporary left


def read_secret_in_process(home: str, start: float, queue) -> None:  # type: ignore[no-untyped-def]
    while time.time() < start:
        pass
    queue.put(read_secret(Path(home), "secret-key"))


def test_concurrent_first_runs_end_with_one_secret(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    start = time.time() + 0.5
    workers = [
        context.Process(target=read_secret_in_process, args=(str(tmp_path), start, queue))
        for _ in range(8)
    ]
    for worker in workers:
        worker.start()
    values = {queue.get(timeout=30) for _ in workers}
    for worker in workers:
        worker.join(timeout=30)
    path = tmp_path / "secrets" / "secret-key"
    assert len(values) == 1 and path.read_text().strip() == values.pop()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret-key"]


# -- access logs: paths, never query strings ---------------------------------------------------


@pytest.fixture
def gunicorn_portal(tmp_path: Path, orthanc_env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    require_tool("gunicorn")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    port = find_free_port()
    log = tmp_path / "gunicorn.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    env.update(orthanc_env)
    env["PACS_DATABASE_URL"] = new_database(tmp_path / "pacs.sqlite3")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(gunicorn),
                "-c",
                "python:portal.gunicorn_config",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "pacs.wsgi:make_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90  # the worker imports the whole portal first
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=30)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(log.read_text()) from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_access_log_names_paths_without_query_strings(
    gunicorn_portal: tuple[str, Path],
) -> None:
    url, log = gunicorn_portal
    session = requests.Session()
    session.trust_env = False
    session.get(f"{url}/worklist?q=Smith%5EJohn", headers={"Referer": f"{url}/?q=Jones"})
    session.get(f"{url}/api/v1/studies?q=Doe&from=2026-01-01")
    session.get(f"{url}/dicom-web/studies?PatientName=Roe*&StudyInstanceUID=1.2.3.4.5")
    deadline = time.monotonic() + 10
    while "/dicom-web/studies" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert '"GET /worklist HTTP/1.1" 302' in text
    assert '"GET /api/v1/studies HTTP/1.1" 401' in text
    assert "/dicom-web/studies HTTP/1.1" in text
    for secret in ("Smith", "Jones", "Doe", "Roe", "1.2.3.4.5", "q=", "?"):
        assert secret not in text, text
