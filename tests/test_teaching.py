"""Teaching files with the real archive: the de-identified copy (leak scan), ingestion
leaving it off the worklist, search, the viewer for researchers, edits, retirement, and
the collection's ZIP re-imported elsewhere with `pacs import`."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from pydicom import dcmread
from sqlalchemy import select

from config.settings import load_settings
from core.accounts import Role
from core.deidentify import Deidentifier
from core.leaks import collect_identifiers
from core.teaching import TEACHING_OPTIONS
from core.validation import ValidationPolicy
from pacs.orthanc_server import start_orthanc, stop_orthanc
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.models.accounts import AuditEvent
from storage.models.studies import Study
from storage.models.teaching import TeachingCase
from storage.studies import list_known_study_ids
from tasks.database import record_study
from tests.support.databases import new_database
from tests.support.leaks import assert_clean
from tests.support.pipeline import upload
from tests.support.reports import ingest
from tests.support.services import make_env, run_pacs
from tests.support.studies import clone_study
from tests.support.users import NOW, PASSWORD, csrf_token_of, sign_in, token_for

ROLES = {
    "radiologist": Role.RADIOLOGIST,
    "second": Role.RADIOLOGIST,
    "researcher": Role.RESEARCHER,
    "admin": Role.ADMIN,
    "manager": Role.MANAGER,
    "referrer": Role.REFERRER,
}


@dataclass
class Site:
    app: Flask
    study_uid: str
    series_uids: list[str]
    identifiers: set[str]


def source_identifiers(datasets) -> set[str]:
    """Every identifying value of the source (as the research export tests scan for)."""
    table = Deidentifier(salt=b"x", options=TEACHING_OPTIONS).table
    found: set[str] = set()
    for ds in datasets:
        found |= collect_identifiers(ds, table)
        found |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
        found |= {str(ds.PatientID), str(ds.AccessionNumber)}
        found |= {part for part in str(ds.PatientName).split("^") if len(part) > 3}
    return {value for value in found if value}


@pytest.fixture
def site(
    tmp_path: Path, orthanc_env: dict[str, str], password_hash: str, monkeypatch
) -> Iterator[Site]:
    """The session's archive, a database of this test's own, a user per role, and a demo
    CR study (the demo patient's identity, new UIDs) in the archive and on the worklist."""
    monkeypatch.setattr("storage.accounts.hash_password", lambda password: password_hash)
    settings = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": new_database(tmp_path / "pacs.sqlite3"),
            "PACS_HOME": str(tmp_path / "home"),
            "PACS_ORTHANC_PASSWORD": load_settings(orthanc_env).orthanc_password,
            "PACS_ORTHANC_VIEWER_PASSWORD": load_settings(orthanc_env).orthanc_viewer_password,
        }
    )
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    with app.app_context():
        for name, role in ROLES.items():
            create_user(db.session, f"{name}@example.org", PASSWORD, role, NOW)
        db.session.commit()
    datasets = clone_study("CR")
    upload(settings, datasets)
    with ArchiveClient.from_settings(settings) as archive:
        ingest(app, archive, archive.find_study_ids(datasets[0].StudyInstanceUID)[0])
    yield Site(
        app,
        datasets[0].StudyInstanceUID,
        sorted({ds.SeriesInstanceUID for ds in datasets}),
        source_identifiers(datasets),
    )


def new_case(site: Site, client, headers, **changes):
    body = {
        "study_uid": site.study_uid,
        "series_uids": site.series_uids[:1],
        "title": "Right upper lobe pneumonia",
        "diagnosis": "Community-acquired pneumonia",
        "findings": "Consolidation with air bronchograms in the right upper lobe.",
        "keywords": ["Consolidation", "air bronchogram", "consolidation"],
        "difficulty": "beginner",
        **changes,
    }
    return client.post("/api/v1/teaching-cases", json=body, headers=headers)


def copy_files(site: Site, copy_uid: str) -> list[bytes]:
    settings = site.app.config["PACS_SETTINGS"]
    with ArchiveClient.from_settings(settings) as archive:
        return [
            archive.get_instance_file(item["ID"])
            for study_id in archive.find_study_ids(copy_uid)
            for item in archive.get_study_instances(study_id)
        ]


def json_of(response) -> list:
    """A DICOMweb answer relayed as the archive sent it (gzip when it chose to)."""
    data = response.data
    if response.headers.get("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    return json.loads(data)


def test_a_teaching_case_is_a_clean_copy_that_researchers_find_and_open(site: Site) -> None:
    client = site.app.test_client()
    radiologist = token_for(client, "radiologist")
    created = new_case(site, client, radiologist)
    assert created.status_code == 201, created.json
    case = created.json
    assert case["state"] == "ready" and case["instances"] >= 1
    assert case["keywords"] == ["consolidation", "air bronchogram"]
    assert case["study_uid"] != site.study_uid and "source_study_uid" not in case

    # The copy: no identifier of the source in its bytes, new UIDs, dates shifted.
    files = copy_files(site, case["study_uid"])
    assert len(files) == case["instances"]
    for data in files:
        assert_clean(data, site.identifiers)
        ds = dcmread(io.BytesIO(data))
        assert ds.PatientIdentityRemoved == "YES" and ds.StudyInstanceUID == case["study_uid"]
        assert ds.SeriesInstanceUID not in site.series_uids

    # Ingestion leaves the copy off the worklist, and counts it as known.
    settings = site.app.config["PACS_SETTINGS"]
    with ArchiveClient.from_settings(settings) as archive:
        copy_id = archive.find_study_ids(case["study_uid"])[0]
        archived = archive.get_archived_study(copy_id)
    assert record_study(settings, archived, ValidationPolicy()).outcome == "teaching"
    with site.app.app_context():
        assert (
            db.session.scalar(select(Study).where(Study.study_instance_uid == case["study_uid"]))
            is None
        )
        assert copy_id in list_known_study_ids(db.session)

    # Researchers find it by keyword, text, modality and diagnosis; never its source.
    researcher = token_for(client, "researcher")

    def found(query: str, role_headers=researcher) -> list[int]:
        answer = client.get(f"/api/v1/teaching-cases?{query}", headers=role_headers)
        assert answer.status_code == 200, answer.json
        return [item["id"] for item in answer.json["items"]]

    for query in (
        "keyword=consolidation",
        "keyword=Air%20Bronchogram",
        "text=PNEUMONIA",
        "modality=CR",
        "diagnosis=pneumonia",
        "",
    ):
        assert found(query) == [case["id"]], query
    for query in ("keyword=consol", "modality=CT", "diagnosis=fracture", "text=%25"):
        assert found(query) == [], query
    one = client.get(f"/api/v1/teaching-cases/{case['id']}", headers=researcher).json
    assert one["findings"].startswith("Consolidation") and "source_study_uid" not in one
    admin = token_for(client, "admin")
    as_admin = client.get(f"/api/v1/teaching-cases/{case['id']}", headers=admin).json
    assert as_admin["source_study_uid"] == site.study_uid  # admins alone

    # The viewer: the copy opens for a researcher; the source and its images do not.
    viewer = client.get(f"/viewer/viewer?StudyInstanceUIDs={case['study_uid']}", headers=researcher)
    assert viewer.status_code == 200
    source = client.get(f"/viewer/viewer?StudyInstanceUIDs={site.study_uid}", headers=researcher)
    assert source.status_code == 403
    series = client.get(f"/dicom-web/studies/{case['study_uid']}/series", headers=researcher)
    assert series.status_code == 200 and len(json_of(series)) == 1
    denied = client.get(f"/dicom-web/studies/{site.study_uid}/series", headers=researcher)
    assert denied.status_code == 403
    search = client.get("/dicom-web/studies", headers=researcher)
    assert search.status_code == 200
    assert [s["0020000D"]["Value"][0] for s in json_of(search)] == [case["study_uid"]]

    # Other roles: managers and referrers see no teaching file.
    for role in ("manager", "referrer"):
        headers = token_for(client, role)
        assert client.get("/api/v1/teaching-cases", headers=headers).status_code == 403
        assert client.get(f"/teaching/{case['id']}", headers=headers).status_code == 403
    with site.app.app_context():
        actions = Counter(
            db.session.scalars(
                select(AuditEvent.action).where(
                    AuditEvent.action.like("teaching%"), AuditEvent.outcome == "success"
                )
            )
        )
    assert actions["teaching_create"] == 1 and actions["teaching_copy"] == 1
    assert actions["teaching_search"] == 10 and actions["teaching_view"] == 2


def test_only_the_author_edits_and_retiring_takes_a_case_out(site: Site) -> None:
    client = site.app.test_client()
    author = token_for(client, "radiologist")
    case = new_case(site, client, author).json
    url = f"/api/v1/teaching-cases/{case['id']}"
    text = {"title": "RUL pneumonia", "difficulty": "intermediate", "keywords": ["lobar"]}
    assert client.put(url, json=text, headers=token_for(client, "second")).status_code == 403
    assert client.put(url, json=text, headers=token_for(client, "researcher")).status_code == 403
    edited = client.put(url, json=text, headers=author)
    assert edited.status_code == 200 and edited.json["title"] == "RUL pneumonia"
    assert client.put(url, json={**text, "difficulty": "expert"}, headers=author).status_code == 422
    researcher = token_for(client, "researcher")
    listed = client.get("/api/v1/teaching-cases?keyword=lobar", headers=researcher).json["items"]
    assert [item["id"] for item in listed] == [case["id"]]
    second = token_for(client, "second")
    assert client.post(f"{url}/retire", headers=second).status_code == 403
    assert client.post(f"{url}/retire", headers=author).json["retired"] is True
    assert client.get("/api/v1/teaching-cases", headers=researcher).json["items"] == []
    assert client.get(url, headers=researcher).status_code == 404
    viewer = client.get(f"/viewer/viewer?StudyInstanceUIDs={case['study_uid']}", headers=researcher)
    assert viewer.status_code == 403


def test_bad_teaching_cases_are_refused_with_a_reason(site: Site) -> None:
    client = site.app.test_client()
    headers = token_for(client, "radiologist")
    refusals = {
        "unknown series": dict(series_uids=["1.2.3.4"]),
        "no series": dict(series_uids=[]),
        "no title": dict(title=""),
        "bad difficulty": dict(difficulty="impossible"),
        "unknown study": dict(study_uid="1.2.3.999"),
        "long keyword": dict(keywords=["x" * 51]),
        "unknown field": dict(patient_name="Doe"),
    }
    statuses = {
        name: new_case(site, client, headers, **body).status_code for name, body in refusals.items()
    }
    assert statuses == {name: 404 if name == "unknown study" else 422 for name in refusals}
    for role in ("researcher", "admin", "manager", "referrer"):
        assert new_case(site, client, token_for(client, role)).status_code == 403, role
    assert copy_files(site, "2.25.1") == []


@pytest.mark.slow
def test_the_collection_zip_reimports_elsewhere_with_pacs_import(
    site: Site, tmp_path: Path
) -> None:
    client = site.app.test_client()
    case = new_case(site, client, token_for(client, "radiologist")).json
    answer = client.get("/teaching/export.zip", headers=token_for(client, "researcher"))
    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["teaching-manifest.json"])
    [entry] = manifest["cases"]
    assert entry["title"] == case["title"] and entry["study_uid"] == case["study_uid"]
    assert sorted(entry["files"]) == sorted(n for n in members if n.endswith(".dcm"))
    assert len(entry["files"]) == case["instances"]
    for data in members.values():
        assert_clean(data, site.identifiers)
    zip_path = tmp_path / "teaching.zip"
    zip_path.write_bytes(answer.data)
    assert not (site.app.config["PACS_SETTINGS"].home / "tmp").exists() or not any(
        (site.app.config["PACS_SETTINGS"].home / "tmp").iterdir()
    )

    elsewhere_env = make_env(tmp_path / "elsewhere")
    elsewhere = load_settings(elsewhere_env)
    process = start_orthanc(elsewhere)
    try:
        done = run_pacs(elsewhere_env, "import", str(zip_path), "--json")
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["counts"]["stored"] == case["instances"], summary
        with ArchiveClient.from_settings(elsewhere) as other:
            [study_id] = other.find_study_ids(case["study_uid"])
            assert len(other.get_study_instances(study_id)) == case["instances"]
    finally:
        stop_orthanc(elsewhere)
        process.wait(timeout=30)


def test_a_copy_cut_short_is_made_again_with_the_same_uids(site: Site) -> None:
    client = site.app.test_client()
    case = new_case(site, client, token_for(client, "radiologist")).json
    with site.app.app_context():  # as if the portal had stopped in the middle of the copy
        row = db.session.get(TeachingCase, case["id"])
        row.state, row.instances = "copying", 0
        db.session.commit()
    researcher = token_for(client, "researcher")
    assert client.get("/api/v1/teaching-cases", headers=researcher).json["items"] == []
    assert client.get(f"/api/v1/teaching-cases/{case['id']}", headers=researcher).status_code == 404
    sign_in(client, "radiologist")
    page = client.get(f"/teaching/{case['id']}").get_data(as_text=True)
    assert "Copy the images again" in page
    again = client.post(f"/teaching/{case['id']}/copy", data={"csrf_token": csrf_token_of(page)})
    assert again.status_code == 302
    with site.app.app_context():
        row = db.session.get(TeachingCase, case["id"])
        assert (row.state, row.instances, row.copy_study_uid) == (
            "ready",
            case["instances"],
            case["study_uid"],
        )
    assert len(copy_files(site, case["study_uid"])) == case["instances"]  # no duplicate


@pytest.mark.slow
def test_copies_go_to_the_research_orthanc_and_the_viewer_relays_them(
    site: Site, tmp_path: Path
) -> None:
    research = load_settings(make_env(tmp_path / "research"))
    process = start_orthanc(research)
    try:
        settings = dataclasses.replace(
            site.app.config["PACS_SETTINGS"],
            research_orthanc_url=research.orthanc_url,
            research_orthanc_user=research.orthanc_user,
            research_orthanc_password=research.orthanc_password,
        )
        app = create_app({"PACS_SETTINGS": settings, "TESTING": True})  # the same database
        client = app.test_client()
        case = new_case(site, client, token_for(client, "radiologist")).json
        assert case["state"] == "ready", case
        assert copy_files(site, case["study_uid"]) == []  # not in the clinical archive
        with ArchiveClient.from_settings(research) as other:
            [study_id] = other.find_study_ids(case["study_uid"])
            files = [other.get_instance_file(i["ID"]) for i in other.get_study_instances(study_id)]
        assert len(files) == case["instances"]
        for data in files:
            assert_clean(data, site.identifiers)
        researcher = token_for(client, "researcher")
        series = client.get(f"/dicom-web/studies/{case['study_uid']}/series", headers=researcher)
        assert series.status_code == 200 and len(json_of(series)) == 1
        exported = client.get("/teaching/export.zip", headers=researcher)
        with zipfile.ZipFile(io.BytesIO(exported.data)) as archive:
            assert sum(n.endswith(".dcm") for n in archive.namelist()) == case["instances"]
    finally:
        stop_orthanc(research)
        process.wait(timeout=30)


def test_images_with_burned_in_annotation_are_left_out_of_the_copy(site: Site) -> None:
    settings = site.app.config["PACS_SETTINGS"]
    datasets = clone_study("CR", BurnedInAnnotation="YES")
    upload(settings, datasets)
    with ArchiveClient.from_settings(settings) as archive:
        ingest(site.app, archive, archive.find_study_ids(datasets[0].StudyInstanceUID)[0])
    client = site.app.test_client()
    series = sorted({ds.SeriesInstanceUID for ds in datasets})
    case = new_case(
        site,
        client,
        token_for(client, "radiologist"),
        study_uid=datasets[0].StudyInstanceUID,
        series_uids=series,
    ).json
    assert (case["state"], case["instances"]) == ("failed", 0)
    assert case["left_out"] == [
        {"reason": "burned-in annotation (Burned In Annotation = YES)", "instances": len(datasets)}
    ]
    assert copy_files(site, case["study_uid"]) == []
    researcher = token_for(client, "researcher")
    assert client.get("/api/v1/teaching-cases", headers=researcher).json["items"] == []
