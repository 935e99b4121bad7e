"""Image viewing: the prepared OHIF bundle, its serving, and the authenticated DICOMweb proxy,
against the session's real Orthanc holding the demo CT, MR and multi-frame US."""

from __future__ import annotations

import datetime
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pytest
import requests
from pydicom import Dataset
from sqlalchemy import select

from core.accounts import Role
from core.ingest import assess_study
from core.records import StudyStatus
from pacs.settings import Settings, load_settings
from portal import create_app
from portal.extensions import db
from portal.viewer.bundle import BOOT_SCRIPT, read_installed_version
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.database import AuditEvent, Study, StudyEvent
from storage.studies import save_assessment
from tests.browser import serve_portal
from tests.conftest import find_free_port
from tests.studies import demo_study

PASSWORD = "a-long-enough-passphrase"
NOW = datetime.datetime.now(datetime.UTC)
MULTIPART_FRAME = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@dataclass
class ViewerPortal:
    url: str
    settings: Settings
    app: object
    ct: str  # reported, referred by referrer@example.org
    mr: str  # referred by somebody else
    us: str  # multi-frame cine

    def session(self, role: str) -> requests.Session:
        """A signed-in HTTP session (bearer token) of the role's user."""
        http = requests.Session()
        token = http.post(
            f"{self.url}/api/v1/auth/token",
            json={"email": f"{role}@example.org", "password": PASSWORD},
            timeout=10,
        ).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        return http


def part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def viewer(
    orthanc_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ViewerPortal]:
    """The portal on the session's Orthanc with the demo CT, MR and US on its worklist."""
    home = tmp_path_factory.mktemp("viewer")
    settings = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": f"sqlite:///{home / 'pacs.sqlite3'}",
            "PACS_PORTAL_PORT": str(find_free_port()),
        }
    )
    assert read_installed_version(settings.viewer_dir), (
        f"no viewer bundle in {settings.viewer_dir}: run scripts/install (pacs viewer install)"
    )
    studies = {modality: demo_study(modality) for modality in ("CT", "MR", "US")}
    app = create_app({"PACS_SETTINGS": settings})
    with ArchiveClient.from_settings(settings) as client, app.app_context():
        for study in studies.values():
            orthanc_id = {client.upload_instance(part10(ds)).study_id for ds in study.datasets}
            assessment = assess_study(client.get_archived_study(orthanc_id.pop()))
            save_assessment(db.session, assessment, NOW)
        for role in Role:
            name = "Referrer^Rita" if role == Role.REFERRER else ""
            create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW, dicom_name=name)
        for modality, study in studies.items():
            row = db.session.scalar(
                select(Study).where(Study.study_instance_uid == study.study_instance_uid)
            )
            row.status = StudyStatus.FINAL  # reported: a referrer could see it if referred
            row.referring_physician = "Referrer^Rita" if modality == "CT" else "Other^Otto"
        db.session.commit()
    with serve_portal(app, settings.portal_port) as url:
        yield ViewerPortal(
            url,
            settings,
            app,
            studies["CT"].study_instance_uid,
            studies["MR"].study_instance_uid,
            studies["US"].study_instance_uid,
        )


def test_the_prepared_bundle_is_served_under_viewer_and_reads_through_the_proxy(
    viewer: ViewerPortal,
) -> None:
    folder = viewer.settings.viewer_dir
    assert not (folder / "ort").exists(), "the AI models are left out"
    index = (folder / "index.html").read_text()
    assert not re.search(r'(src|href|content)="/(?!viewer/)', index), "a root path is left"
    assert "<script>" not in index, "inline scripts are moved to a file for the CSP"
    assert f'src="/viewer/{BOOT_SCRIPT}"' in index
    for bundle in folder.glob("*.js"):
        assert '__webpack_require__.p = "/";' not in bundle.read_text(), bundle.name
    for css in folder.glob("*.css"):
        assert not re.search(r"url\(/(?!viewer/)", css.read_text()), css.name
    assert "browserImportFunction('/dicom-microscopy-viewer/" not in "".join(
        path.read_text() for path in folder.glob("app.bundle.*.js")
    )
    config = (folder / "app-config.js").read_text()
    assert '"routerBasename": "/viewer"' in config
    assert 'window.location.origin + "/dicom-web"' in config
    for root in ("qidoRoot", "wadoRoot", "wadoUriRoot"):
        assert f"source.{root} = proxy;" in config
    assert '"option": "never"' in config  # no investigational-use dialog


def test_the_bundle_is_served_compressed_cached_and_with_client_routes(
    viewer: ViewerPortal,
) -> None:
    http = viewer.session("radiologist")
    page = http.get(f"{viewer.url}/viewer/viewer?StudyInstanceUIDs={viewer.ct}", timeout=10)
    assert page.status_code == 200 and "app.bundle" in page.text
    assert page.headers["Cache-Control"] == "no-cache"
    assert "wasm-unsafe-eval" in page.headers["Content-Security-Policy"]
    app_bundle = re.search(r'src="/viewer/(app\.bundle\.[0-9a-f]+\.js)"', page.text).group(1)
    script = http.get(
        f"{viewer.url}/viewer/{app_bundle}", headers={"Accept-Encoding": "gzip"}, stream=True
    )
    assert script.headers["Content-Encoding"] == "gzip"
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in script.headers["Cache-Control"]
    assert b"__webpack_require__" in gzip.decompress(script.raw.read())
    wasm = next(viewer.settings.viewer_dir.glob("*.wasm"))
    answer = http.get(f"{viewer.url}/viewer/{wasm.name}", timeout=10)
    assert answer.headers["Content-Type"] == "application/wasm"
    assert answer.content == wasm.read_bytes()
    assert http.get(f"{viewer.url}/viewer/../pacs.sqlite3", timeout=10).status_code in (200, 404)
    assert b"SQLite" not in http.get(f"{viewer.url}/viewer/..%2Fpacs.sqlite3").content


def test_a_missing_bundle_says_how_to_install_it(viewer: ViewerPortal, tmp_path: Path) -> None:
    settings = load_settings(
        {
            "PACS_HOME": str(viewer.settings.home),
            "PACS_DATABASE_URL": viewer.settings.database_url,
            "PACS_VIEWER_DIR": str(tmp_path / "nothing-here"),
        }
    )
    client = create_app({"PACS_SETTINGS": settings}).test_client()
    token = client.post(
        "/api/v1/auth/token", json={"email": "radiologist@example.org", "password": PASSWORD}
    ).json["token"]
    answer = client.get("/viewer/", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 503
    assert "scripts/install" in answer.text and "pacs viewer install" in answer.text


def test_roles_that_may_not_see_images_are_refused(viewer: ViewerPortal) -> None:
    anonymous = requests.get(f"{viewer.url}/dicom-web/studies", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "sign in first"
    page = requests.get(f"{viewer.url}/viewer/", timeout=10, allow_redirects=False)
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    for role in ("manager", "researcher"):
        http = viewer.session(role)
        assert http.get(f"{viewer.url}/dicom-web/studies", timeout=10).status_code == 403
        assert http.get(f"{viewer.url}/viewer/", timeout=10).status_code == 403


def test_qido_searches_reach_orthanc_decoded_with_includefields_split(
    viewer: ViewerPortal,
) -> None:
    http = viewer.session("radiologist")
    family = demo_study("US").patient_name.split("^")[0]  # ASCII: see the README's proxy notes
    answer = http.get(
        f"{viewer.url}/dicom-web/studies",
        params={"PatientName": f"{family[:3]}*", "includefield": "00081030,00080060"},
        timeout=10,
    )
    assert answer.status_code == 200
    found = {item["0020000D"]["Value"][0]: item for item in answer.json()}
    assert list(found) == [viewer.us]
    assert "00081030" in found[viewer.us] and "00080061" in found[viewer.us]
    all_studies = http.get(f"{viewer.url}/dicom-web/studies", timeout=10).json()
    assert {viewer.ct, viewer.mr, viewer.us} <= {
        item["0020000D"]["Value"][0] for item in all_studies
    }


def test_metadata_and_frames_stream_through_with_bulk_data_on_the_portal(
    viewer: ViewerPortal,
) -> None:
    http = viewer.session("radiologist")
    series = http.get(f"{viewer.url}/dicom-web/studies/{viewer.us}/series", timeout=10).json()
    cine = []
    for item in series:
        series_uid = item["0020000E"]["Value"][0]
        metadata = http.get(
            f"{viewer.url}/dicom-web/studies/{viewer.us}/series/{series_uid}/metadata",
            headers={"Accept-Encoding": "gzip"},
            timeout=10,
        )
        assert metadata.status_code == 200
        assert "WWW-Authenticate" not in metadata.headers
        cine += [
            (series_uid, instance)
            for instance in metadata.json()
            if int(instance.get("00280008", {}).get("Value", [1])[0]) > 1
        ]
    series_uid, instance = cine[0]  # the multi-frame cine
    bulk = instance["7FE00010"]["BulkDataURI"]
    assert bulk.startswith(f"{viewer.url}/dicom-web/studies/{viewer.us}/"), bulk
    sop_uid = instance["00080018"]["Value"][0]
    frame = http.get(
        f"{viewer.url}/dicom-web/studies/{viewer.us}/series/{series_uid}/instances/{sop_uid}/frames/3",
        headers={"Accept": MULTIPART_FRAME},
        timeout=10,
    )
    assert frame.status_code == 200
    assert frame.headers["Content-Type"].startswith("multipart/related")
    rows, columns = instance["00280010"]["Value"][0], instance["00280011"]["Value"][0]
    assert len(frame.content) > rows * columns  # the frame's pixels and the multipart framing
    rendered = http.get(
        f"{viewer.url}/dicom-web/studies/{viewer.us}/series/{series_uid}/instances/{sop_uid}/rendered",
        headers={"Accept": "image/jpeg"},
        timeout=10,
    )
    assert rendered.status_code == 200 and rendered.content[:2] == b"\xff\xd8"
    missing = http.get(f"{viewer.url}/dicom-web/studies/1.2.3.4/series", timeout=10)
    assert missing.status_code in (200, 404) and not missing.content.strip(b"[]")


def test_writes_and_other_resources_are_refused(viewer: ViewerPortal) -> None:
    http = viewer.session("admin")
    stow = http.post(
        f"{viewer.url}/dicom-web/studies",
        data=b"--x--",
        headers={"Content-Type": "multipart/related; type=application/dicom; boundary=x"},
        timeout=10,
    )
    assert stow.status_code == 405 and "error" in stow.json()
    assert http.delete(f"{viewer.url}/dicom-web/studies/{viewer.ct}", timeout=10).status_code == 405
    servers = http.get(f"{viewer.url}/dicom-web/servers", timeout=10)
    assert servers.status_code == 404 and "studies, series or instances" in servers.json()["error"]


def test_a_referrer_sees_only_their_reported_studies(viewer: ViewerPortal) -> None:
    http = viewer.session("referrer")
    studies = http.get(f"{viewer.url}/dicom-web/studies", timeout=10).json()
    assert [item["0020000D"]["Value"][0] for item in studies] == [viewer.ct]
    assert http.get(f"{viewer.url}/dicom-web/studies/{viewer.ct}/series", timeout=10).ok
    for path in (
        f"studies/{viewer.mr}/series",
        f"studies/{viewer.mr}/metadata",
        f"series?StudyInstanceUID={viewer.mr}",
        "series",
        "instances",
    ):
        answer = http.get(f"{viewer.url}/dicom-web/{path}", timeout=10)
        assert answer.status_code == 403, path
        assert answer.json()["error"].startswith("you may only view studies you referred")
    page = http.get(f"{viewer.url}/viewer/viewer?StudyInstanceUIDs={viewer.mr}", timeout=10)
    assert page.status_code == 403
    assert http.get(f"{viewer.url}/viewer/viewer?StudyInstanceUIDs={viewer.ct}").ok


def test_an_unreachable_or_refusing_archive_gives_a_json_502(
    viewer: ViewerPortal, tmp_path: Path
) -> None:
    for orthanc in (
        {"PACS_ORTHANC_URL": f"http://127.0.0.1:{find_free_port()}"},
        {"PACS_ORTHANC_PASSWORD": "wrong"},
    ):
        settings = load_settings(
            {
                "PACS_HOME": str(viewer.settings.home),
                "PACS_ORTHANC_HTTP_PORT": str(viewer.settings.orthanc_http_port),
                "PACS_DATABASE_URL": viewer.settings.database_url,
                **orthanc,
            }
        )
        client = create_app({"PACS_SETTINGS": settings}).test_client()
        token = client.post(
            "/api/v1/auth/token", json={"email": "radiologist@example.org", "password": PASSWORD}
        ).json["token"]
        answer = client.get("/dicom-web/studies", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 502, orthanc
        assert "WWW-Authenticate" not in answer.headers
        assert answer.json["error"].startswith("the archive")


def test_opening_a_study_is_audited_once_not_per_frame(viewer: ViewerPortal) -> None:
    http = viewer.session("radiologist")
    http.get(f"{viewer.url}/viewer/viewer?StudyInstanceUIDs={viewer.mr}", timeout=10)
    series = http.get(f"{viewer.url}/dicom-web/studies/{viewer.mr}/series", timeout=10).json()
    for item in series:
        series_uid = item["0020000E"]["Value"][0]
        http.get(
            f"{viewer.url}/dicom-web/studies/{viewer.mr}/series/{series_uid}/metadata", timeout=10
        )
    http.get(f"{viewer.url}/viewer/viewer?StudyInstanceUIDs={viewer.mr}", timeout=10)
    with viewer.app.app_context():
        opened = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.study_uid == viewer.mr,
                AuditEvent.user_email == "radiologist@example.org",
            )
        ).all()
        assert [event.action for event in opened] == ["viewer.open", "viewer.open"]
        first_opened = db.session.scalars(
            select(StudyEvent)
            .join(Study)
            .where(Study.study_instance_uid == viewer.mr, StudyEvent.kind == "opened")
        ).all()
        assert [event.user_email for event in first_opened] == ["radiologist@example.org"]
