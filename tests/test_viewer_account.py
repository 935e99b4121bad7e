"""The viewer's own archive account, held by Orthanc's plugin to GET under /dicom-web/.

Against the session's real Orthanc: the account the portal's DICOMweb proxy uses
can search and retrieve, and is refused (403) everything else, whatever the path
looks like on the wire; the full account keeps working.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest
import requests
from pydicom.uid import generate_uid

from config.settings import Settings
from pacs.orthanc_server import OrthancPaths
from storage.archive import ArchiveClient
from tests.support.studies import make_part10


@pytest.fixture(scope="module")
def stored_study(settings: Settings) -> str:
    """A study of this module's own in the archive; its Study Instance UID."""
    study_uid = generate_uid()
    with ArchiveClient.from_settings(settings) as client:
        client.upload_instance(make_part10(study_uid=study_uid))
    return study_uid


def viewer_auth(settings: Settings) -> tuple[str, str]:
    return settings.orthanc_viewer_user, settings.orthanc_viewer_password


def full_auth(settings: Settings) -> tuple[str, str]:
    return settings.orthanc_user, settings.orthanc_password


def send_raw(settings: Settings, method: str, target: str, *authorizations: tuple[str, str]) -> int:
    """Send `target` byte for byte (no client normalises it); the response's status code."""
    port = settings.orthanc_http_port
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    for user, password in authorizations:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    lines.append("Content-Length: 0")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_the_viewer_account_searches_and_retrieves(settings: Settings, stored_study: str) -> None:
    auth = viewer_auth(settings)
    url = settings.orthanc_url
    search = requests.get(
        f"{url}/dicom-web/studies", params={"StudyInstanceUID": stored_study}, auth=auth
    )
    assert search.status_code == 200, search.text
    assert [item["0020000D"]["Value"][0] for item in search.json()] == [stored_study]
    metadata = requests.get(f"{url}/dicom-web/studies/{stored_study}/metadata", auth=auth)
    assert metadata.status_code == 200
    series_uid = metadata.json()[0]["0020000E"]["Value"][0]
    sop_uid = metadata.json()[0]["00080018"]["Value"][0]
    frame = requests.get(
        f"{url}/dicom-web/studies/{stored_study}/series/{series_uid}/instances/{sop_uid}/frames/1",
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
        auth=auth,
    )
    assert frame.status_code == 200 and len(frame.content) > 1000
    # HEAD is let through to Orthanc (which has no HEAD of its own for DICOMweb).
    head = requests.head(f"{url}/dicom-web/studies", auth=auth)
    assert head.status_code != 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/patients"),
        ("GET", "/instances"),
        ("GET", "/studies"),
        ("GET", "/system"),
        ("GET", "/tools/now"),
        ("POST", "/tools/find"),
        ("POST", "/instances"),
        ("GET", "/modalities"),
        ("PUT", "/modalities/EVIL"),
        ("GET", "/changes"),
        ("POST", "/dicom-web/studies"),
        ("DELETE", "/dicom-web/studies/1.2.3"),
        ("PUT", "/dicom-web/studies"),
        ("GET", "/dicom-webx/studies"),
        ("GET", "/wado"),
        ("GET", "/app/explorer.html"),
    ],
)
def test_the_viewer_account_is_refused_everything_else(
    settings: Settings, method: str, path: str
) -> None:
    response = requests.request(
        method, f"{settings.orthanc_url}{path}", auth=viewer_auth(settings), json={}
    )
    assert response.status_code == 403, (method, path, response.status_code)


@pytest.mark.parametrize(
    "target",
    [
        "/dicom-web/../patients",
        "/dicom-web/studies/../../patients",
        "/dicom-web/%2e%2e/patients",
        "/dicom-web/studies%2F..%2F..%2Fpatients",
        "/dicom-web/studies/..%2F..%2Ftools/now",
        "/dicom-web/./../instances",
        "/dicom-web/studies/..%5C..%5Cpatients",
    ],
)
def test_paths_that_climb_out_of_dicom_web_are_refused_on_the_wire(
    settings: Settings, target: str
) -> None:
    assert send_raw(settings, "GET", target, viewer_auth(settings)) == 403
    # Not an artefact of the path: the same bytes with the full account are answered.
    assert send_raw(settings, "GET", target, full_auth(settings)) != 403


def test_a_second_authorization_header_does_not_lift_the_limits(settings: Settings) -> None:
    """Whichever header Orthanc authenticates, the viewer's never reaches beyond DICOMweb."""
    wrong_full = (settings.orthanc_user, "not-the-password")
    for headers in ((viewer_auth(settings), wrong_full), (wrong_full, viewer_auth(settings))):
        assert send_raw(settings, "GET", "/patients", *headers) in (401, 403)


def test_the_full_account_keeps_every_right(settings: Settings, stored_study: str) -> None:
    with ArchiveClient.from_settings(settings) as client:
        assert client.get_system()["DicomAet"] == settings.orthanc_aet
        assert client.find_study_ids(stored_study)
        assert isinstance(client.get_json("/patients"), list)
    auth = full_auth(settings)
    search = requests.get(f"{settings.orthanc_url}/dicom-web/studies", auth=auth)
    assert search.status_code == 200


def test_refusals_are_logged_with_path_and_address(settings: Settings) -> None:
    requests.get(f"{settings.orthanc_url}/tools/now", auth=viewer_auth(settings))
    log = Path(OrthancPaths(settings.orthanc_dir).log).read_text(errors="replace")
    assert "refused" in log and "/tools/now for the viewer account from 127.0.0.1" in log
