"""Image viewing: the prepared OHIF bundle, its serving, and the authenticated DICOMweb proxy,
against the session's real Orthanc holding the demo CT, MR and multi-frame US."""

from __future__ import annotations

import datetime
import gzip
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pytest
import requests
from pydicom import Dataset
from sqlalchemy import select

import core.records
from config.settings import Settings, load_settings
from core.accounts import Role
from core.ingest import assess_study
from core.records import StudyStatus
from flows.ingest_study import process_studies
from portal import create_app
from portal.extensions import db
from portal.viewer.bundle import BOOT_SCRIPT, read_installed_version
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.metadata_cache import MetadataCache, get_preparer, series_metadata_key
from storage.models.accounts import AuditEvent
from storage.models.studies import Study, StudyEvent
from storage.studies import save_assessment
from tests.support.browser import screenshot, serve_portal, sign_in
from tests.support.databases import new_database
from tests.support.services import find_free_port
from tests.support.studies import clone_study, demo_study
from tests.support.viewer import (
    VIEWER_TIMEOUT_MS,
    open_largest_series,
    read_viewport,
    wait_for_image,
)

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
            "PACS_DATABASE_URL": new_database(home / "pacs.sqlite3"),
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
    for escape in ("..%2Fpacs.sqlite3", "%2e%2e/pacs.sqlite3", "..%2F..%2Fetc%2Fpasswd"):
        answer = http.get(f"{viewer.url}/viewer/{escape}", timeout=10)
        assert answer.status_code == 404, escape  # refused, not the catch-all index.html


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
    http = viewer.session("manager")
    assert http.get(f"{viewer.url}/dicom-web/studies", timeout=10).status_code == 403
    assert http.get(f"{viewer.url}/viewer/", timeout=10).status_code == 403
    # Researchers view the teaching collection only: a study search finds no clinical study.
    http = viewer.session("researcher")
    found = http.get(f"{viewer.url}/dicom-web/studies", timeout=10)
    assert found.status_code == 200 and found.json() == []


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
    assert viewer.us in found  # (other tests' copies of the demo US may match too)
    names = [item["00100010"]["Value"][0]["Alphabetic"] for item in found.values()]
    assert all(name.startswith(family[:3]) for name in names), names
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


def test_series_metadata_is_kept_while_the_series_is_unchanged(viewer: ViewerPortal) -> None:
    """The archive builds a series' metadata from every instance's file (minutes for a big
    CT): the portal keeps it, per origin, and never serves it once the series has grown."""
    datasets = clone_study("CT", limit=3)
    for ds in datasets:  # one series
        ds.SeriesInstanceUID = datasets[0].SeriesInstanceUID
    first, late = datasets[:2], datasets[2]
    with ArchiveClient.from_settings(viewer.settings) as client:
        for ds in first:
            client.upload_instance(part10(ds))
    path = f"studies/{first[0].StudyInstanceUID}/series/{first[0].SeriesInstanceUID}/metadata"
    http = viewer.session("radiologist")
    folder = viewer.settings.metadata_cache_dir

    def fetch(host: str | None = None) -> list[dict]:
        headers = {"Accept-Encoding": "gzip", **({"Host": host} if host else {})}
        answer = http.get(f"{viewer.url}/dicom-web/{path}", headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Encoding"] == "gzip"
        return answer.json()

    def sop_uids(metadata: list[dict]) -> set[str]:
        return {instance["00080018"]["Value"][0] for instance in metadata}

    before = set(folder.glob("*.json.gz")) if folder.exists() else set()
    assert sop_uids(fetch()) == {ds.SOPInstanceUID for ds in first}
    deadline = time.monotonic() + 10
    while not set(folder.glob("*.json.gz")) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    [kept] = set(folder.glob("*.json.gz")) - before
    assert kept.stat().st_mode & 0o077 == 0, "patient data: private to the platform"
    # What is kept goes out only after the proxy's checks: a referrer of other studies is
    # refused it, however warm the cache.
    refused = viewer.session("referrer").get(
        f"{viewer.url}/dicom-web/{path}", headers={"Accept-Encoding": "gzip"}, timeout=10
    )
    assert refused.status_code == 403 and "error" in refused.json()
    written = kept.stat().st_mtime_ns
    again = fetch()
    assert sop_uids(again) == {ds.SOPInstanceUID for ds in first}
    time.sleep(0.3)  # what a body written again would take
    assert set(folder.glob("*.json.gz")) - before == {kept}
    assert kept.stat().st_mtime_ns == written, "served from what was kept, not written again"
    # Kept per origin: BulkDataURIs always name the origin the browser used.
    port = viewer.url.rsplit(":", 1)[1]
    other = fetch(f"localhost:{port}")
    bulk = [i["7FE00010"]["BulkDataURI"] for i in other if "BulkDataURI" in i.get("7FE00010", {})]
    assert bulk and all(uri.startswith(f"http://localhost:{port}/dicom-web/") for uri in bulk)
    # The series grows (a late slice): never the old body again.
    with ArchiveClient.from_settings(viewer.settings) as client:
        study_id = client.upload_instance(part10(late)).study_id
    assert sop_uids(fetch()) == {ds.SOPInstanceUID for ds in datasets}
    # Deleted from the archive: refused, and what was kept of it goes. (A body is kept once
    # its last byte has gone out, a moment after the client may have read it.)
    deadline = time.monotonic() + 10
    while len(set(folder.glob("*.json.gz")) - before) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(set(folder.glob("*.json.gz")) - before) == 3, "one per origin and size"
    with ArchiveClient.from_settings(viewer.settings) as client:
        client.delete_study(study_id)
    gone = http.get(
        f"{viewer.url}/dicom-web/{path}", headers={"Accept-Encoding": "gzip"}, timeout=10
    )
    assert gone.status_code == 404 and "error" in gone.json()
    assert set(folder.glob("*.json.gz")) - before == set()


def test_a_new_series_metadata_is_ready_before_anyone_opens_it(
    viewer: ViewerPortal, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive builds a series' metadata from every instance's file (a second for a
    3,000-slice CT): the pipeline has it built and kept as it ingests the study, for the
    origin and media types the viewer last used, so a radiologist's first look is as quick
    as a second one. A quarantined study is not prepared. (Series from PREPARE_FROM
    instances are; three here, to keep the test quick.)"""
    monkeypatch.setattr(core.records, "PREPARE_FROM", 1)
    http = viewer.session("radiologist")
    accept = {"Accept": "application/dicom+json", "Accept-Encoding": "gzip"}
    series = http.get(f"{viewer.url}/dicom-web/studies/{viewer.ct}/series", timeout=10).json()
    opened = series[0]["0020000E"]["Value"][0]
    path = f"studies/{viewer.ct}/series/{opened}/metadata"
    assert http.get(f"{viewer.url}/dicom-web/{path}", headers=accept, timeout=10).ok
    cache = MetadataCache(viewer.settings.metadata_cache_dir)
    forwarded = f"host={viewer.url.removeprefix('http://')};proto=http"
    deadline = time.monotonic() + 10  # remembered once the body is kept, after its last byte
    while cache.list_viewers()[:1] != [(forwarded, accept["Accept"])]:
        assert time.monotonic() < deadline, cache.list_viewers()
        time.sleep(0.05)

    datasets = clone_study("CT", limit=3)
    for ds in datasets:  # one series
        ds.SeriesInstanceUID = datasets[0].SeriesInstanceUID
    broken = clone_study("CT", limit=1, PatientID="")
    with ArchiveClient.from_settings(viewer.settings) as client:
        study_id = {client.upload_instance(part10(ds)).study_id for ds in datasets}.pop()
        broken_id = client.upload_instance(part10(broken[0])).study_id
    batch = process_studies(viewer.settings, [study_id, broken_id], wait_for_stable=False)
    outcomes = {o.orthanc_id: o.outcome for o in batch.outcomes}
    assert outcomes[study_id] in ("ingested", "arriving") and outcomes[broken_id] == "quarantined"
    assert get_preparer(viewer.settings).wait(30), "prepared beside the ingestion"
    owner = f"{datasets[0].StudyInstanceUID}/{datasets[0].SeriesInstanceUID}"
    key = series_metadata_key(owner, 3, forwarded, accept["Accept"])
    assert cache.has(owner, key), "prepared by the pipeline, before any request"
    prepared = cache.path_for(owner, key).stat()
    assert prepared.st_mode & 0o077 == 0, "patient data: private to the platform"
    broken_owner = f"{broken[0].StudyInstanceUID}/{broken[0].SeriesInstanceUID}"
    assert not cache.has(
        broken_owner, series_metadata_key(broken_owner, 1, *cache.list_viewers()[0])
    )

    path = f"studies/{datasets[0].StudyInstanceUID}/series/{datasets[0].SeriesInstanceUID}/metadata"
    answer = http.get(f"{viewer.url}/dicom-web/{path}", headers=accept, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Encoding"] == "gzip"
    metadata = answer.json()
    assert {i["00080018"]["Value"][0] for i in metadata} == {ds.SOPInstanceUID for ds in datasets}
    bulk = [i["7FE00010"]["BulkDataURI"] for i in metadata]
    assert all(uri.startswith(f"{viewer.url}/dicom-web/studies/") for uri in bulk), bulk
    time.sleep(0.3)  # what a body written again would take
    assert cache.path_for(owner, key).stat().st_mtime_ns == prepared.st_mtime_ns, (
        "served from what the pipeline kept, not built again"
    )
    # Ingested again (the reconciliation's safety net): nothing is built twice.
    process_studies(viewer.settings, [study_id], wait_for_stable=False)
    assert get_preparer(viewer.settings).wait(30)
    assert cache.path_for(owner, key).stat().st_mtime_ns == prepared.st_mtime_ns


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
    ):
        answer = http.get(f"{viewer.url}/dicom-web/{path}", timeout=10)
        assert answer.status_code == 403, path
        assert answer.json()["error"].startswith("you may only view studies you referred")
    for path in ("series", "instances"):
        answer = http.get(f"{viewer.url}/dicom-web/{path}", timeout=10)
        assert answer.status_code == 403, path
        assert answer.json()["error"] == "searches of series and instances must name the study"
    page = http.get(f"{viewer.url}/viewer/viewer?StudyInstanceUIDs={viewer.mr}", timeout=10)
    assert page.status_code == 403
    assert http.get(f"{viewer.url}/viewer/viewer?StudyInstanceUIDs={viewer.ct}").ok


def test_an_unreachable_or_refusing_archive_gives_a_json_502(
    viewer: ViewerPortal, tmp_path: Path
) -> None:
    for orthanc in (
        {"PACS_ORTHANC_URL": f"http://127.0.0.1:{find_free_port()}"},
        {"PACS_ORTHANC_VIEWER_PASSWORD": "wrong"},  # the proxy signs in as the viewer
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


def test_opening_a_study_is_audited_once_and_read_once_not_per_frame(
    viewer: ViewerPortal,
) -> None:
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
        # Each viewer page load is an opening; the DICOMweb reads behind it (series, every
        # series' metadata) are one event for this user, study and hour.
        assert [event.action for event in opened] == ["viewer.open", "dicomweb.read", "viewer.open"]
        first_opened = db.session.scalars(
            select(StudyEvent)
            .join(Study)
            .where(Study.study_instance_uid == viewer.mr, StudyEvent.kind == "opened")
        ).all()
        assert [event.user_email for event in first_opened] == ["radiologist@example.org"]


@pytest.mark.slow
@pytest.mark.requires("chromium")
@pytest.mark.parametrize("modality", ["CT", "MR", "US"])
def test_a_radiologist_opens_a_study_from_the_worklist_and_scrolls_through_it(
    viewer: ViewerPortal, browser, modality: str
) -> None:
    study_uid = {"CT": viewer.ct, "MR": viewer.mr, "US": viewer.us}[modality]
    context = browser.new_context(base_url=viewer.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(VIEWER_TIMEOUT_MS)
    try:
        page = context.new_page()
        assert sign_in(page, "radiologist@example.org", PASSWORD) == 200
        page.goto(f"/worklist?modality={modality}")
        row = page.locator(f"tr[data-study-uid='{study_uid}']")
        with context.expect_page() as opened:
            row.get_by_role("link", name="Open").click()
        images = opened.value
        images.wait_for_selector("canvas.cornerstone-canvas")
        count = open_largest_series(images)
        assert count > 1, "the study has a series (or cine) to scroll through"
        images.wait_for_function(
            "n => document.querySelector('[data-cy=viewport-overlay-bottom-right]')"
            "?.innerText.includes('/' + n)",
            arg=count,
        )
        first = wait_for_image(images)
        position, _ = read_viewport(images)
        screenshot(images, f"viewer-{modality}-first", full_page=False)
        images.locator("canvas.cornerstone-canvas").first.hover()
        for _ in range(3):
            images.mouse.wheel(0, 120)
        wait_for_image(images, unlike=first)
        moved, _ = read_viewport(images)
        assert moved != position, (position, moved)
        screenshot(images, f"viewer-{modality}-scrolled", full_page=False)
    finally:
        context.close()


@pytest.mark.slow
@pytest.mark.requires("chromium")
def test_a_referrer_is_refused_another_physicians_study_in_the_viewer(
    viewer: ViewerPortal, browser
) -> None:
    context = browser.new_context(base_url=viewer.url)
    try:
        page = context.new_page()
        sign_in(page, "referrer@example.org", PASSWORD)
        answer = page.goto(f"/viewer/viewer?StudyInstanceUIDs={viewer.mr}")
        assert answer.status == 403
        assert "you may only view studies you referred" in page.inner_text("main")
        proxy = page.request.get(f"/dicom-web/studies/{viewer.mr}/series")
        assert proxy.status == 403
        screenshot(page, "viewer-referrer-refused")
    finally:
        context.close()
