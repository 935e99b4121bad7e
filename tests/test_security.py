"""The portal's boundary, tried as an attacker would: hostile requests against a running portal
(waitress, as `pacs up` serves it) in front of the session's real Orthanc, and every route with
every role against a table of expected access written here, not read from the routes."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pytest
from flask import Flask
from pydicom import Dataset
from sqlalchemy import select
from waitress.server import create_server

from config.settings import load_settings
from core.accounts import ALL_ROLES, Role, hash_password
from core.ingest import assess_study
from core.records import StudyStatus
from portal import create_app
from portal.extensions import db
from portal.security import PUBLIC_ENDPOINTS
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.models.accounts import AuditEvent
from storage.models.studies import Study
from storage.studies import save_assessment
from tests.support.databases import new_database
from tests.support.services import find_free_port, make_env
from tests.support.studies import demo_study

PASSWORD = "a-long-enough-passphrase"
NOW = datetime.datetime.now(datetime.UTC)
REQUEST_LINE = re.compile(rb"(?:GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS) (\S+) HTTP/1\.[01]\r\n")


class CountingRelay:
    """A TCP relay in front of Orthanc that records every HTTP request line it carries."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[str] = []
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def __enter__(self) -> CountingRelay:
        self.start_thread(self.accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()
        for thread in self.threads:
            thread.join(timeout=5)

    def start_thread(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
            self.sockets += [client, upstream]
            self.start_thread(self.pump, client, upstream, True)
            self.start_thread(self.pump, upstream, client, False)

    def pump(self, source: socket.socket, sink: socket.socket, is_request: bool) -> None:
        pending = b""
        try:
            while data := source.recv(65536):
                if is_request:
                    pending = (pending + data)[-8192:]
                    with self.lock:
                        self.seen += [m.decode() for m in REQUEST_LINE.findall(pending)]
                    pending = pending[pending.rfind(b"\r\n") + 2 :]
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def take(self) -> list[str]:
        with self.lock:
            seen, self.seen = self.seen, []
        return seen


@dataclass
class Site:
    port: int
    app: Flask
    relay: CountingRelay
    ct: str  # final, referred by the referrer
    mr: str  # final, referred by somebody else
    mr_series: str
    mr_instance: str
    ct_series: str
    ct_instance: str
    tokens: dict[str, str] = field(default_factory=dict)

    def get(self, raw_path: str, role: str | None = "radiologist", **headers: str):
        """Send `raw_path` exactly as written (no client-side normalisation)."""
        return self.send("GET", raw_path, role, **headers)

    def send(self, method: str, raw_path: str, role: str | None, **headers: str):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            if role:
                headers["Authorization"] = f"Bearer {self.tokens[role]}"
            connection.putrequest(method, raw_path, skip_host="Host" in headers)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def site(orthanc_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The portal under waitress on the session's Orthanc, reached through a counting relay."""
    home = tmp_path_factory.mktemp("security")
    direct = load_settings({**orthanc_env, "PACS_DATABASE_URL": new_database(home / "db")})
    relay = CountingRelay(direct.orthanc_http_port)
    settings = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": direct.database_url,
            "PACS_ORTHANC_URL": f"http://127.0.0.1:{relay.port}",
        }
    )
    studies = {modality: demo_study(modality) for modality in ("CT", "MR")}
    app = create_app({"PACS_SETTINGS": settings})
    with relay, ArchiveClient.from_settings(direct) as client, app.app_context():
        for study in studies.values():
            ids = {client.upload_instance(part10(ds)).study_id for ds in study.datasets}
            save_assessment(db.session, assess_study(client.get_archived_study(ids.pop())), NOW)
        for role in Role:
            name = "Referrer^Rita" if role == Role.REFERRER else ""
            create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW, dicom_name=name)
        for modality, study in studies.items():
            row = db.session.scalar(
                select(Study).where(Study.study_instance_uid == study.study_instance_uid)
            )
            row.status = StudyStatus.FINAL
            row.referring_physician = "Referrer^Rita" if modality == "CT" else "Other^Otto"
        db.session.commit()
        port = find_free_port()
        server = create_server(app, host="127.0.0.1", port=port, threads=4)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        ct, mr = studies["CT"].datasets[0], studies["MR"].datasets[0]
        site = Site(
            port,
            app,
            relay,
            ct.StudyInstanceUID,
            mr.StudyInstanceUID,
            mr.SeriesInstanceUID,
            mr.SOPInstanceUID,
            ct.SeriesInstanceUID,
            ct.SOPInstanceUID,
        )
        with app.test_client() as client:
            for role in Role:
                answer = client.post(
                    "/api/v1/auth/token",
                    json={"email": f"{role}@example.org", "password": PASSWORD},
                )
                site.tokens[role] = answer.json["token"]
        try:
            yield site
        finally:
            server.close()
            thread.join(timeout=10)


def hostile_requests(site: Site) -> list[tuple[str, str, str | None, dict[str, str], int]]:
    """(class, raw path, role, headers, expected status): each must be refused at the portal."""
    ct, mr, se, inst = site.ct, site.mr, site.mr_series, site.mr_instance
    ct_se, ct_inst = site.ct_series, site.ct_instance
    instance = f"studies/{ct}/series/{ct_se}/instances/{ct_inst}"
    rad, ref = "radiologist", "referrer"
    cases: list[tuple[str, str, str | None, dict[str, str], int]] = []

    def add(kind: str, path: str, role: str | None, status: int, **headers: str) -> None:
        cases.append((kind, path, role, headers, status))

    # Traversal spellings: raw, encoded, double-encoded, mixed case, backslash, overlong.
    for path in (
        f"/dicom-web/studies/{ct}/..%2F..%2F..%2Fpatients",
        f"/dicom-web/studies/{ct}/..%2f..%2f..%2fpatients",
        f"/dicom-web/studies/{ct}/../../../patients",
        "/dicom-web/../tools/dicom-conformance",
        "/dicom-web/%2e%2e/tools/dicom-conformance",
        "/dicom-web/%2E%2E%2Ftools%2Fdicom-conformance",
        f"/dicom-web/studies/{ct}/%252e%252e%252f%252e%252e%252fpatients",
        f"/dicom-web/studies/{ct}/..%5c..%5cpatients",
        f"/dicom-web/studies/{ct}\\..\\..\\patients",
        f"/dicom-web/studies/{ct}/%c0%ae%c0%ae%c0%afpatients",
        f"/dicom-web/studies/{ct}/%EF%BC%8E%EF%BC%8E/patients",
        f"/dicom-web/studies/{ct}/series/..;/..;/patients",
        f"/dicom-web/studies/./{ct}/series",
        f"/dicom-web/studies/{ct}/series/.",
        f"/dicom-web/studies/{ct}//series",
        f"/dicom-web/studies/{ct}/series/",
        f"/dicom-web/studies/{ct}%00/series",
        f"/dicom-web/studies/{ct};x=1/series",
        "/dicom-web/studies/1.2%2E3/series",
    ):
        add("traversal", path, rad, 400)
    add("traversal", f"/dicom-web//studies/{ct}/series", rad, 404)  # matches no route
    # Resources outside the grammar: Orthanc's REST API, retrievals the viewer never makes.
    for path in (
        "/dicom-web/patients",
        "/dicom-web/tools/find",
        "/dicom-web/servers",
        "/dicom-web/STUDIES",
        f"/dicom-web/studies/{ct}",
        f"/dicom-web/studies/{ct}/Series",
        f"/dicom-web/studies/{ct}/archive",
        f"/dicom-web/studies/{ct}/series/{ct_se}",
        f"/dicom-web/{instance}",
        f"/dicom-web/{instance}/file",
        f"/dicom-web/{instance}/bulk/notatag",
        f"/dicom-web/{instance}/bulk/7fe00010/0",
        f"/dicom-web/{instance}/frames/0",
        f"/dicom-web/{instance}/frames/1,,2",
        f"/dicom-web/{instance}/frames/1/2",
        f"/dicom-web/instances/{ct_inst}",
    ):
        add("unknown resource", path, rad, 404)
    # Identifiers that are not UIDs.
    for path, status in (
        ("/dicom-web/studies/abc/series", 404),
        ("/dicom-web/studies/1.2.3.*/series", 400),
        ("/dicom-web/studies/1..2/series", 404),
        ("/dicom-web/studies/.1.2/series", 404),
        (f"/dicom-web/studies/{'1.' * 32}1/series", 404),
        (f"/dicom-web/studies/{ct},{mr}/series", 404),
    ):
        add("malformed UID", path, rad, status)
    # Parameters: pollution, aliases, unknown names, bad values.
    for query in (
        f"StudyInstanceUID={ct}&StudyInstanceUID={mr}",
        f"0020000D={mr}&StudyInstanceUID={mr}",  # a tag is its keyword: named twice
        f"studyinstanceuid={mr}",
        "PatientName=A&PatientName=B",
        "includefield=../../patients",
        "includefield=PatientName&includefield=%00",
        "limit=999999",
        "limit=-1",
        "offset=x",
        "PatientName=%00",
        "PatientName=a%0d%0aX-Injected:%201",
        "ReferencedStudySequence=x",
        "fuzzymatching=yes",
        "StudyInstanceUID=1.2.*",
        "NotAnAttribute=1",
    ):
        add("query", f"/dicom-web/studies?{query}", rad, 400)
    for path in (
        f"/dicom-web/{instance}/metadata?foo=bar",
        f"/dicom-web/{instance}/frames/1?accept=x",
        f"/dicom-web/{instance}/rendered?quality=1000",
        f"/dicom-web/{instance}/rendered?window=abc",
        f"/dicom-web/{instance}/rendered?viewport=1,2&viewport=3,4",
        f"/dicom-web/{instance}/rendered?annotation=patient",
    ):
        add("query", path, rad, 400)
    # A referrer reaching for another study, by every way of naming one; a researcher
    # (the teaching collection's copies only) reaching for any clinical study the same ways.
    reaching = (
        (f"/dicom-web/studies/{mr}/series", 403),
        (f"/dicom-web/studies/{mr}/metadata", 403),
        (f"/dicom-web/studies/{mr}/series/{se}/instances/{inst}/frames/1", 403),
        (f"/dicom-web/studies/{mr}/series/{se}/instances/{inst}/bulk/7fe00010", 403),
        (f"/dicom-web/studies/{mr}/series/{se}/instances/{inst}/rendered", 403),
        (f"/dicom-web/studies?StudyInstanceUID={mr}", 403),
        (f"/dicom-web/studies?StudyInstanceUID={ct}&StudyInstanceUID={mr}", 400),
        (f"/dicom-web/studies?StudyInstanceUID={ct},{mr}", 403),
        (f"/dicom-web/studies?StudyInstanceUID={ct}%5C{mr}", 403),
        ("/dicom-web/studies?StudyInstanceUID=*", 400),
        (f"/dicom-web/studies?0020000D={mr}", 403),  # by tag: the same study to the checks
        (f"/dicom-web/studies?0020000d={mr}", 403),
        (f"/dicom-web/series?StudyInstanceUID={mr}", 403),
        (f"/dicom-web/series?SeriesInstanceUID={se}", 403),
        ("/dicom-web/series", 403),
        ("/dicom-web/instances", 403),
        (f"/dicom-web/instances?SOPInstanceUID={inst}", 403),
        (f"/dicom-web/studies/{ct}/series?StudyInstanceUID={mr}", 400),
        (f"/dicom-web/studies/{ct}/series/{se}/instances/{inst}/frames/1", 200),
        (f"/viewer/viewer?StudyInstanceUIDs={mr}", 403),
        (f"/viewer/viewer?StudyInstanceUIDs={ct},{mr}", 403),
    )
    for path, status in reaching:
        if status != 200:
            add("other study", path, ref, status)
        add("clinical study", path, "researcher", 403 if status == 200 else status)
    # Methods other than reading, roles without images, no or forged credentials.
    add("query", f"/dicom-web/studies?PatientName={'A' * 300}", rad, 400)  # over 256 characters
    add("traversal", f"/dicom-web/studies/{ct}/series/{'1.' * 600}1", rad, 400)  # path > 1024
    for method in ("POST", "PUT", "DELETE", "PATCH", "TRACE"):
        cases.append(("method", f"/dicom-web/studies/{ct}/series", rad, {"_method": method}, 405))
    add("role", f"/dicom-web/studies/{ct}/series", "manager", 403)
    add("role", f"/viewer/viewer?StudyInstanceUIDs={ct}", "manager", 403)
    add("anonymous", f"/dicom-web/studies/{ct}/series", None, 401)
    add("anonymous", "/dicom-web/studies", None, 401, Authorization="Bearer forged")
    add("anonymous", "/dicom-web/studies", None, 401, Authorization="Basic cGFjczpwYWNz")
    # Headers that would go into what Orthanc writes back.
    add("header", f"/dicom-web/studies/{ct}/series", rad, 400, Host="evil;proto=javascript")
    add("header", f"/dicom-web/studies/{ct}/series", rad, 400, Host="a, host=b")
    # The viewer page and the bundle's files.
    add("viewer page", "/viewer/viewer?StudyInstanceUIDs=../../x", rad, 400)
    add("viewer page", "/viewer/viewer?StudyInstanceUIDs=1.2.3%00", rad, 400)
    for path in ("/viewer/..%2F..%2Fdb", "/viewer/%2e%2e/%2e%2e/db", "/static/..%2f..%2fdb"):
        add("file traversal", path, rad, 404)
    return cases


def test_hostile_requests_are_refused_before_the_archive(site: Site) -> None:
    cases = hostile_requests(site)
    assert len(cases) >= 60
    site.relay.take()
    outcomes = []
    for kind, path, role, headers, expected in cases:
        method = headers.pop("_method", "GET")
        status, body = site.send(method, path, role, **headers)
        outcomes.append((kind, path, role, expected, status))
        if status >= 400 and path.startswith(("/dicom-web/", "/api/")):
            assert body.startswith(b"{"), (path, body[:200])  # JSON, not Orthanc's text
    wrong = [outcome for outcome in outcomes if outcome[3] != outcome[4]]
    assert not wrong, "\n".join(map(str, wrong))
    assert site.relay.take() == [], "a refused request reached the archive"
    # The relay does see what is allowed: the count above is not vacuous.
    allowed = f"/dicom-web/studies/{site.ct}/series"
    assert site.get(allowed, "referrer")[0] == 200
    assert [line for line in site.relay.take() if "/series" in line]


def test_relayed_requests_are_rebuilt_from_parsed_parts(site: Site) -> None:
    site.relay.take()
    status, _ = site.get(
        f"/dicom-web/studies?StudyInstanceUID={site.ct}&includefield=00081030,PatientName&limit=5"
    )
    assert status == 200
    [line] = site.relay.take()
    assert line == (
        f"/dicom-web/studies?StudyInstanceUID={site.ct}"
        "&includefield=00081030&includefield=PatientName&limit=5"
    )


def test_orthanc_errors_are_not_passed_to_the_browser(site: Site) -> None:
    # A series of another study under this study's path: Orthanc answers 404 with its text.
    status, body = site.get(f"/dicom-web/studies/{site.ct}/series/{site.mr_series}/metadata")
    assert status == 404
    assert body == b'{"detail":null,"error":"not found in the archive"}\n'


def test_dicomweb_reads_are_audited_once_per_user_study_and_hour(site: Site) -> None:
    series = f"/dicom-web/studies/{site.mr}/series/{site.mr_series}"
    assert site.get(f"/dicom-web/studies/{site.ct}/..%2Fpatients", "admin")[0] == 400
    for _ in range(3):
        assert site.get(f"{series}/metadata", "admin")[0] == 200
        assert site.get(f"{series}/instances/{site.mr_instance}/frames/1", "admin")[0] == 200
    with site.app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.user_email == "admin@example.org", AuditEvent.study_uid == site.mr
            )
        ).all()
        refused = db.session.scalars(
            select(AuditEvent.object_id).where(
                AuditEvent.action == "dicomweb.read", AuditEvent.outcome == "denied"
            )
        ).all()
    assert actions == ["dicomweb.read"]
    assert any("patients" in path for path in refused), "refusals are audited too"


def test_series_previews_are_audited_once_per_user_study_and_hour(site: Site) -> None:
    preview = f"/studies/{site.ct}/series/{site.ct_series}/preview.png"
    for _ in range(3):
        assert site.get(preview, "radiologist")[0] == 200
    with site.app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.user_email == "radiologist@example.org",
                AuditEvent.study_uid == site.ct,
                AuditEvent.action == "view_series_preview",
            )
        ).all()
    assert actions == ["view_series_preview"]


# --- every route, every role -------------------------------------------------------------

A, R, F, M, S = "admin", "radiologist", "referrer", "manager", "researcher"
EVERYONE = frozenset({A, R, F, M, S})
# What each route must allow, decided here (not read from the routes' declarations).
EXPECTED_ACCESS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): EVERYONE,
    ("GET", "/account/password"): EVERYONE,
    ("POST", "/account/password"): EVERYONE,
    ("GET", "/admin/audit"): frozenset({A}),
    ("GET", "/admin/orders"): frozenset({A}),
    ("GET", "/admin/quarantine"): frozenset({A}),
    ("POST", "/admin/quarantine/<orthanc_id>/<action>"): frozenset({A}),
    ("GET", "/admin/report-templates"): frozenset({A}),
    ("POST", "/admin/report-templates/<key>"): frozenset({A}),
    ("GET", "/admin/users"): frozenset({A}),
    ("POST", "/admin/users"): frozenset({A}),
    ("POST", "/admin/users/<int:user_id>/<action>"): frozenset({A}),
    ("GET", "/admin/modalities"): frozenset({A}),
    ("POST", "/admin/modalities"): frozenset({A}),
    ("POST", "/admin/modalities/remove"): frozenset({A}),
    ("GET", "/analytics"): frozenset({A, M}),
    ("GET", "/analytics/<chart>.csv"): frozenset({A, M}),
    ("GET", "/analytics/data.json"): frozenset({A, M}),
    ("GET", "/analytics/plotly.min.js"): frozenset({A, M}),
    ("GET", "/analytics/peer-review"): frozenset({A, M}),
    ("GET", "/api/v1/analytics/peer-review"): frozenset({A, M}),
    ("GET", "/peer-review"): frozenset({A, R}),
    ("GET", "/teaching"): frozenset({A, R, S}),
    ("GET", "/teaching/export.zip"): frozenset({A, R, S}),
    ("GET", "/teaching/<int:case_id>"): frozenset({A, R, S}),
    ("POST", "/teaching/<int:case_id>"): frozenset({R}),
    ("POST", "/teaching/<int:case_id>/retire"): frozenset({A, R}),
    ("POST", "/teaching/<int:case_id>/copy"): frozenset({R}),
    ("GET", "/studies/<study_uid>/teaching"): frozenset({R}),
    ("POST", "/studies/<study_uid>/teaching"): frozenset({R}),
    ("GET", "/api/v1/teaching-cases"): frozenset({A, R, S}),
    ("POST", "/api/v1/teaching-cases"): frozenset({R}),
    ("GET", "/api/v1/teaching-cases/<int:case_id>"): frozenset({A, R, S}),
    ("PUT", "/api/v1/teaching-cases/<int:case_id>"): frozenset({R}),
    ("POST", "/api/v1/teaching-cases/<int:case_id>/retire"): frozenset({A, R}),
    ("POST", "/peer-review/score"): frozenset({R}),
    ("POST", "/peer-review/assign"): frozenset({A}),
    ("GET", "/peer-review/discussions"): frozenset({A}),
    ("POST", "/peer-review/discussions/<int:review_id>"): frozenset({A}),
    ("GET", "/api/v1/peer-reviews"): frozenset({A, R}),
    ("POST", "/api/v1/peer-reviews"): frozenset({R}),
    ("POST", "/api/v1/peer-reviews/assignments"): frozenset({A}),
    ("POST", "/api/v1/peer-reviews/<int:review_id>/outcome"): frozenset({A}),
    ("GET", "/api/v1/analytics/turnaround"): frozenset({A, M}),
    ("GET", "/api/v1/audit"): frozenset({A}),
    ("POST", "/api/v1/auth/token"): frozenset({"public"}),
    ("POST", "/api/v1/exports"): frozenset({A, S}),
    ("GET", "/api/v1/exports"): frozenset({A, S}),
    ("GET", "/api/v1/exports/<int:export_id>"): frozenset({A, S}),
    ("POST", "/api/v1/exports/<int:export_id>/approve"): frozenset({A}),
    ("GET", "/api/v1/exports/<int:export_id>/download"): frozenset({A, S}),
    ("GET", "/api/v1/exports/<int:export_id>/pseudonyms"): frozenset({A}),
    ("POST", "/api/v1/exports/<int:export_id>/reject"): frozenset({A}),
    ("POST", "/api/v1/exports/cohort-size"): frozenset({A, S}),
    ("POST", "/api/v1/hooks/orthanc"): frozenset({"public"}),
    ("POST", "/api/v1/imports"): frozenset({A, R}),
    ("GET", "/api/v1/imports/<int:import_id>"): frozenset({A, R}),
    ("GET", "/api/v1/quarantine"): frozenset({A}),
    ("DELETE", "/api/v1/quarantine/<key>"): frozenset({A}),
    ("POST", "/api/v1/quarantine/<key>/release"): frozenset({A}),
    ("GET", "/api/v1/studies"): frozenset({A, R}),
    ("GET", "/api/v1/studies/<study_uid>"): frozenset({A, R}),
    ("POST", "/api/v1/studies/<study_uid>/assign"): frozenset({A, R}),
    ("POST", "/api/v1/studies/<study_uid>/priority"): frozenset({A, R}),
    ("GET", "/api/v1/studies/<study_uid>/priors"): frozenset({A, R, F}),
    ("POST", "/api/v1/studies/<study_uid>/critical-result/communications"): frozenset({R}),
    ("GET", "/api/v1/critical-results"): frozenset({A, R, F}),
    ("POST", "/api/v1/critical-results/<int:result_id>/acknowledge"): frozenset({A, R, F}),
    ("GET", "/api/v1/studies/<study_uid>/report"): frozenset({A, R, F}),
    ("PUT", "/api/v1/studies/<study_uid>/report"): frozenset({R}),
    ("POST", "/api/v1/studies/<study_uid>/report/addenda"): frozenset({R}),
    ("POST", "/api/v1/studies/<study_uid>/report/finalize"): frozenset({R}),
    ("POST", "/api/v1/studies/<study_uid>/report/preliminary"): frozenset({R}),
    ("GET", "/dicom-web/<path:path>"): frozenset({A, R, F, S}),
    ("GET", "/imports"): frozenset({A, R}),
    ("POST", "/imports"): frozenset({A, R}),
    ("GET", "/imports/<int:import_id>"): frozenset({A, R}),
    ("GET", "/login"): frozenset({"public"}),
    ("GET", "/orders"): frozenset({A, R}),
    ("POST", "/login"): frozenset({"public"}),
    ("POST", "/logout"): EVERYONE,
    ("POST", "/logout-everywhere"): EVERYONE,
    ("GET", "/referrals"): frozenset({F}),
    ("GET", "/research"): frozenset({A, S}),
    ("POST", "/research/exports/<int:export_id>/decision"): frozenset({A}),
    ("POST", "/research/requests"): frozenset({A, S}),
    ("POST", "/research/size"): frozenset({A, S}),
    ("GET", "/studies/<study_uid>"): frozenset({A, R}),
    ("POST", "/studies/<study_uid>/assign"): frozenset({A, R}),
    ("POST", "/studies/<study_uid>/priority"): frozenset({A, R}),
    ("GET", "/studies/<study_uid>/report"): frozenset({A, R, F}),
    ("POST", "/studies/<study_uid>/critical-result/communications"): frozenset({R}),
    ("GET", "/critical-results"): frozenset({A, R, F}),
    ("POST", "/critical-results/<int:result_id>/acknowledge"): frozenset({A, R, F}),
    ("GET", "/studies/<study_uid>/report.pdf"): frozenset({A, R, F}),
    ("GET", "/studies/<study_uid>/report/edit"): frozenset({R}),
    ("GET", "/studies/<study_uid>/series/<series_uid>/preview.png"): frozenset({A, R}),
    ("GET", "/viewer/"): frozenset({A, R, F, S}),
    ("GET", "/viewer/<path:path>"): frozenset({A, R, F, S}),
    ("GET", "/worklist"): frozenset({A, R}),
    ("GET", "/worklist/changes"): frozenset({A, R}),
    ("GET", "/worklist/next"): frozenset({A, R}),
}
URL_SAMPLES = {  # harmless values for every URL variable the portal's routes take
    "study_uid": "1.2.826.0.1.3680043.10.1",
    "series_uid": "1.2.826.0.1.3680043.10.1.1",
    "orthanc_id": "00000000-00000000-00000000-00000000-00000000",
    "key": "00000000-00000000-00000000-00000000-00000000",
    "action": "disable",
    "user_id": 999999,
    "path": "studies",
    "import_id": 999999,
    "chart": "volume",
    "export_id": 999999,
    "result_id": 999999,
    "review_id": 999999,
    "case_id": 999999,
}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    password_hash = hash_password(PASSWORD)
    monkeypatch.setattr("storage.accounts.hash_password", lambda password: password_hash)
    settings = load_settings(make_env(tmp_path, PACS_IMPORT_RADIOLOGISTS="1"))
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    with app.app_context():
        for role in Role:
            create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW)
        db.session.commit()
    return app


def test_every_route_is_in_the_table_and_allows_exactly_its_roles(app: Flask) -> None:
    client = app.test_client()
    routes = {
        (method, rule.rule): rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in PUBLIC_ENDPOINTS
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert sorted(set(routes) - set(EXPECTED_ACCESS)) == [], "routes missing from the table"
    assert sorted(set(EXPECTED_ACCESS) - set(routes)) == [], "table rows with no route"

    def token(role: str) -> dict[str, str]:
        answer = client.post(
            "/api/v1/auth/token", json={"email": f"{role}@example.org", "password": PASSWORD}
        )
        return {"Authorization": f"Bearer {answer.json['token']}"}

    headers = {role: token(role) for role in ALL_ROLES}
    for (method, path), rule in sorted(routes.items()):
        expected = EXPECTED_ACCESS[(method, path)]
        if expected == {"public"}:
            continue
        url = app.url_map.bind("localhost").build(
            rule.endpoint, {name: URL_SAMPLES[name] for name in rule.arguments}, method=method
        )
        anonymous = client.open(url, method=method)
        assert anonymous.status_code in (401, 302), (method, path, anonymous.status_code)
        for role in ALL_ROLES:
            response = client.open(url, method=method, headers=headers[role], json={})
            if role in expected:
                assert response.status_code not in (401, 403), (method, path, role)
            else:
                assert response.status_code == 403, (method, path, role, response.status_code)
            if "logout" in rule.endpoint:  # that call ended the token's validity
                headers[role] = token(role)
