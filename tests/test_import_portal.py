"""Imports through the portal: `POST /api/v1/imports` and the upload page, against a real
Orthanc: summaries, size limit, who may import, links to the studies, the audit trail."""

from __future__ import annotations

import datetime
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydicom.fileset import FileSet
from sqlalchemy import select

from config.settings import Settings, load_settings
from core.accounts import Role
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.models.accounts import AuditEvent
from storage.models.quarantine import QuarantinedStudy
from storage.models.studies import Study
from tests.support.databases import new_database
from tests.support.studies import clone_study
from tests.support.users import PASSWORD

NOW = datetime.datetime.now(datetime.UTC)


def make_app(
    orthanc_env: dict[str, str], tmp_path: Path, password_hash: str, **env: str
) -> Iterator[Flask]:
    settings = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": new_database(tmp_path / "pacs.sqlite3"),
            **env,
        }
    )
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    with pytest.MonkeyPatch.context() as patch, app.app_context():
        patch.setattr("storage.accounts.hash_password", lambda password: password_hash)
        for role in (Role.ADMIN, Role.RADIOLOGIST, Role.REFERRER):
            create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW)
        create_user(db.session, "second@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
        db.session.commit()
    yield app


@pytest.fixture
def app(orthanc_env: dict[str, str], tmp_path: Path, password_hash: str) -> Iterator[Flask]:
    yield from make_app(orthanc_env, tmp_path, password_hash, PACS_IMPORT_RADIOLOGISTS="1")


def token_for(client: FlaskClient, email: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def upload(client: FlaskClient, headers: dict, files: dict[str, bytes], url="/api/v1/imports"):
    return client.post(
        url,
        headers=headers,
        data={"files": [(io.BytesIO(data), name) for name, data in files.items()]},
        content_type="multipart/form-data",
    )


def dicom_bytes(datasets) -> list[bytes]:
    out = []
    for ds in datasets:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def upload_folder(settings: Settings) -> Path:
    return settings.home / "tmp"


def test_programs_import_a_zip_and_files_and_see_the_summary(
    app: Flask, archive: ArchiveClient
) -> None:
    client = app.test_client()
    admin = token_for(client, "admin@example.org")
    ct = clone_study("CT", limit=3)
    cr = clone_study("CR", limit=1)
    ct_files = dicom_bytes(ct)
    tmp = upload_folder(app.config["PACS_SETTINGS"])
    before = set(tmp.iterdir()) if tmp.exists() else set()

    response = upload(
        client,
        admin,
        {
            "ct.zip": zip_of({f"ct/{n}.dcm": data for n, data in enumerate(ct_files)}),
            "xray.dcm": dicom_bytes(cr)[0],
            "letter.txt": b"Dear colleague,",
            "../../../escape.dcm": ct_files[0],
        },
    )

    assert response.status_code == 201, response.json
    body = response.json
    assert body["counts"] == {"stored": 4, "already_stored": 0, "rejected": 2, "ignored": 0}
    files = {f["name"]: f for f in body["files"]}
    assert files["letter.txt"]["refusal"] == "not_dicom"
    assert files["../../../escape.dcm"]["refusal"] == "unsafe_archive"
    assert files["ct.zip:ct/2.dcm"]["outcome"] == "stored"
    assert {s["study_instance_uid"] for s in body["studies"]} == {
        ct[0].StudyInstanceUID,
        cr[0].StudyInstanceUID,
    }
    assert {s["place"] for s in body["studies"]} == {"pending"}
    assert len(archive.find("Instance", {"StudyInstanceUID": ct[0].StudyInstanceUID})) == 3
    # Nothing of the upload is left behind, and nothing escaped the upload folder.
    assert (set(tmp.iterdir()) if tmp.exists() else set()) == before
    assert not (app.config["PACS_SETTINGS"].home.parent / "escape.dcm").exists()

    again = client.get(f"/api/v1/imports/{body['id']}", headers=admin)
    assert again.status_code == 200
    assert again.json["counts"] == body["counts"]
    with app.app_context():
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "import"))
        assert event.user_email == "admin@example.org"
        assert event.object_id == str(body["id"])
        assert event.detail.startswith("api: 4 stored, 0 already in the archive, 2 rejected")


def test_a_dropped_cd_folder_keeps_its_layout_and_its_dicomdir_is_followed(
    app: Flask, tmp_path: Path
) -> None:
    media = tmp_path / "cd"
    file_set = FileSet()
    for ds in clone_study("MR", limit=2):
        file_set.add(ds)
    file_set.write(media)
    (media / "viewer.exe").write_bytes(b"MZ not an image")
    files = {
        f"cd/{path.relative_to(media).as_posix()}": path.read_bytes()
        for path in media.rglob("*")
        if path.is_file()
    }
    client = app.test_client()
    response = upload(client, token_for(client, "admin@example.org"), files)
    assert response.status_code == 201, response.json
    assert response.json["counts"] == {
        "stored": 2,
        "already_stored": 0,
        "rejected": 0,
        "ignored": 2,
    }
    ignored = {f["name"]: f["reason"] for f in response.json["files"] if f["outcome"] == "ignored"}
    assert ignored["cd/viewer.exe"] == "not referenced by the DICOMDIR of its media"


def test_an_upload_over_the_limit_gets_a_clear_413(
    orthanc_env: dict[str, str], tmp_path: Path, password_hash: str
) -> None:
    app = next(make_app(orthanc_env, tmp_path, password_hash, PACS_IMPORT_MAX_MB="1"))
    client = app.test_client()
    admin = token_for(client, "admin@example.org")
    response = upload(client, admin, {"big.dcm": bytes(2 * 1024 * 1024)})
    assert response.status_code == 413
    assert "limit of 1 MB (PACS_IMPORT_MAX_MB)" in response.json["error"]
    # Within the limit, more than the portal's usual 1 MiB per request is not needed...
    small = upload(client, admin, {"a.dcm": dicom_bytes(clone_study("CR", limit=1))[0]})
    assert small.status_code == 201
    # ...and other routes keep their own small limit.
    other = client.post(
        "/api/v1/auth/token", json={"email": "x" * 2 * 1024 * 1024, "password": "y"}
    )
    assert other.status_code == 413
    assert "PACS_IMPORT_MAX_MB" not in other.json["error"]


def test_an_empty_upload_is_a_400(app: Flask) -> None:
    client = app.test_client()
    admin = token_for(client, "admin@example.org")
    response = client.post("/api/v1/imports", headers=admin, data={"other": "x"})
    assert response.status_code == 400
    assert "no files" in response.json["error"]


def test_radiologists_import_only_when_the_setting_allows(
    orthanc_env: dict[str, str], tmp_path: Path, password_hash: str, app: Flask
) -> None:
    (tmp_path / "closed").mkdir()
    closed = next(make_app(orthanc_env, tmp_path / "closed", password_hash))
    client = closed.test_client()
    radiologist = token_for(client, "radiologist@example.org")
    data = dicom_bytes(clone_study("CR", limit=1))[0]
    assert upload(client, radiologist, {"a.dcm": data}).status_code == 403
    assert client.get("/imports", headers=radiologist).status_code == 403
    assert ">Import<" not in client.get("/worklist", headers=radiologist).get_data(as_text=True)
    assert upload(client, token_for(client, "referrer@example.org"), {}).status_code == 403

    client = app.test_client()  # PACS_IMPORT_RADIOLOGISTS=1
    radiologist = token_for(client, "radiologist@example.org")
    response = upload(client, radiologist, {"a.dcm": data})
    assert response.status_code == 201
    assert ">Import<" in client.get("/worklist", headers=radiologist).get_data(as_text=True)
    own = f"/api/v1/imports/{response.json['id']}"
    assert client.get(own, headers=radiologist).status_code == 200
    second = token_for(client, "second@example.org")
    assert client.get(own, headers=second).status_code == 404  # someone else's import
    assert client.get(own, headers=token_for(client, "admin@example.org")).status_code == 200


def csrf_token_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_the_upload_page_posts_then_shows_the_summary_with_study_links(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    client.post(
        "/login",
        data={"email": "admin@example.org", "password": PASSWORD, "csrf_token": token},
    )
    page = client.get("/imports")
    assert page.status_code == 200
    assert "up to 2048 MB per upload" in page.get_data(as_text=True)
    on_worklist = clone_study("CT", limit=1)
    quarantined = clone_study("US", limit=1)
    files = {
        "a.dcm": dicom_bytes(on_worklist)[0],
        "b.dcm": dicom_bytes(quarantined)[0],
        "c.txt": b"not an image",
    }
    without_token = upload(client, {}, files, url="/imports")
    assert without_token.status_code == 400  # cookie sessions need the CSRF token
    response = client.post(
        "/imports",
        data={
            "csrf_token": csrf_token_of(page.get_data(as_text=True)),
            "files": [(io.BytesIO(data), name) for name, data in files.items()],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    summary_url = response.headers["Location"]
    assert re.fullmatch(r"/imports/\d+", summary_url)

    pending = client.get(summary_url).get_data(as_text=True)
    assert "waiting for ingestion" in pending and "data-refresh" in pending
    # Once ingested (here: written as the pipeline would), the summary links to them.
    with app.app_context():
        db.session.add(make_study(on_worklist[0].StudyInstanceUID))
        db.session.add(
            QuarantinedStudy(
                orthanc_id="q-1",
                state="open",
                study_instance_uid=quarantined[0].StudyInstanceUID,
                quarantined_at=NOW,
                checked_at=NOW,
            )
        )
        db.session.commit()
    html = client.get(summary_url).get_data(as_text=True)
    assert f'href="/studies/{on_worklist[0].StudyInstanceUID}"' in html
    assert "in quarantine" in html and 'href="/admin/quarantine"' in html
    assert "data-refresh" not in html
    assert "c.txt" in html and "not DICOM" in html
    listing = client.get("/imports").get_data(as_text=True)
    assert summary_url in listing


def make_study(study_uid: str) -> Study:
    return Study(
        study_instance_uid=study_uid,
        orthanc_id=f"o-{study_uid[-12:]}",
        status="received",
        patient_name="Imported^Patient",
        received_at=NOW,
        ingested_at=NOW,
        warnings=[],
    )
