"""Image viewing: the OHIF bundle under /viewer/ and the authenticated DICOMweb proxy.

The browser never talks to Orthanc: every image request goes through `/dicom-web/`,
where the portal checks the user's right to the study and adds the archive's
credentials itself. Opening a study in the viewer is audited once (when the viewer page
is loaded for it), not once per frame.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from werkzeug.security import safe_join

from core.accounts import CLINICAL_READERS, Role
from core.teaching import Location
from portal.extensions import db
from portal.security import audit, audit_study, audit_study_read, deny, roles, utc_now
from portal.viewer.bundle import BOOT_SCRIPT, is_hashed_name, read_installed_version
from portal.viewer.grammar import (
    DicomwebRequest,
    RequestRefused,
    check_single_study,
    is_uid,
    parse_request,
)
from portal.viewer.proxy import (
    ARCHIVE_ERRORS,
    CHUNK_SIZE,
    REQUEST_HEADERS,
    build_orthanc_query,
    filter_studies,
    forwarded_header,
    read_study_uids,
    relay_headers,
    stream_body,
)
from storage.archive import ArchiveClient, ArchiveTimeout, ArchiveUnavailable
from storage.metadata_cache import MetadataCache, is_keepable, series_metadata_key
from storage.referrals import find_referred_study_uids
from storage.studies import record_study_opened
from storage.teaching import find_viewable_copy, list_viewable_copy_uids

bp = Blueprint("viewer", __name__, template_folder="../templates")

# OHIF needs WebAssembly for its codecs, workers from blob: URLs and inline styles (React);
# scripts still come only from the portal.
VIEWER_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
    "img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
    "connect-src 'self' data: blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'self'"
)
YEAR = 365 * 24 * 3600
HOUR = 3600
ENTRY_FILES = frozenset({"index.html", "app-config.js", BOOT_SCRIPT})
UPSTREAM_TIMEOUT = (5.0, 60.0)  # connect, then between bytes
REFERRER_LIMIT = "you may only view studies you referred, once they are reported"
RESEARCHER_LIMIT = "you may only view the teaching collection's cases"
# Researchers see the teaching collection's de-identified copies, nothing else.
VIEWER_ROLES = (*CLINICAL_READERS, Role.RESEARCHER)
RESTRICTED_ROLES = (Role.REFERRER, Role.RESEARCHER)
HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?")
COMPARE_PROTOCOL = "@ohif/hpCompare"
MAX_AUDITED_STUDIES = 20  # studies named in one request that are audited one by one
mimetypes.add_type("application/wasm", ".wasm")


@bp.app_template_global()
def viewer_url(study_uid: str) -> str:
    """Where "Open" takes a user: the study in OHIF's default (longitudinal) mode."""
    return url_for("viewer.serve_viewer", path="viewer", StudyInstanceUIDs=study_uid)


@bp.app_template_global()
def compare_url(study_uid: str, prior_uid: str) -> str:
    """The study and a prior side by side (OHIF's comparison hanging protocol)."""
    return url_for(
        "viewer.serve_viewer",
        path="viewer",
        StudyInstanceUIDs=f"{study_uid},{prior_uid}",
        hangingProtocolId=COMPARE_PROTOCOL,
    )


@bp.get("/viewer/", defaults={"path": ""})
@bp.get("/viewer/<path:path>")
@roles(*VIEWER_ROLES)
def serve_viewer(path: str) -> Any:
    """A file of the bundle, or index.html for the viewer's own client-side routes."""
    folder: Path = current_app.config["PACS_SETTINGS"].viewer_dir
    if read_installed_version(folder) is None:
        return render_template("viewer/missing.html", folder=folder), 503
    file = safe_join(str(folder), path) if path else str(folder)
    if file is None:
        return deny(404, "no such file")
    if Path(file).is_file():
        return send_bundle_file(Path(file))
    study_uids = [uid for uid in request.args.get("StudyInstanceUIDs", "").split(",") if uid]
    if not all(is_uid(uid) for uid in study_uids):
        return deny(400, "StudyInstanceUIDs takes study UIDs separated by commas")
    refused = [uid for uid in study_uids if not may_view_study(uid)]
    if refused:
        audit_study("viewer.open", refused[0], "denied")
        db.session.commit()
        return deny(403, limit_message())
    for uid in study_uids:
        audit_study("viewer.open", uid)
    if study_uids and current_user.role == Role.RADIOLOGIST:
        # The first study is the one being read; the others are priors opened beside it,
        # which must not count as a first opening for turnaround.
        record_study_opened(db.session, study_uids[0], current_user.email, utc_now())
    db.session.commit()
    return send_bundle_file(folder / "index.html")


def send_bundle_file(path: Path) -> Response:
    """Send a bundle file, pre-compressed when the browser accepts gzip."""
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    compressed = path.with_name(f"{path.name}.gz")
    if "gzip" in request.accept_encodings and compressed.is_file():
        response = send_file(compressed, mimetype=mimetype, conditional=True, etag=True)
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = send_file(path, mimetype=mimetype, conditional=True, etag=True)
    response.vary.add("Accept-Encoding")
    if is_hashed_name(path.name):
        response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    elif path.name in ENTRY_FILES:
        response.headers["Cache-Control"] = "no-cache"  # always revalidated: they name the rest
    else:
        # OHIF's CSS chunks and icons carry no hash: an hour spares a revalidation round
        # trip per file on every opening, and an upgraded bundle still shows within the hour.
        response.headers["Cache-Control"] = f"public, max-age={HOUR}"
    response.headers["Content-Security-Policy"] = VIEWER_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/dicom-web/<path:path>", merge_slashes=False)
@roles(*VIEWER_ROLES)
def proxy_dicomweb(path: str) -> Any:
    """QIDO-RS and WADO-RS, read-only, parsed, for the studies this user may see."""
    try:
        parsed = parse_request(path, request.args.items(multi=True), read_raw_path())
        check_host(request.host)
        if current_user.role in RESTRICTED_ROLES:
            study_uid = check_single_study(parsed)
            if study_uid is not None and not may_view_study(study_uid):
                raise RequestRefused(403, limit_message())
    except RequestRefused as refused:
        audit("dicomweb.read", "denied", object_type="path", object_id=path[:255])
        db.session.commit()
        return deny(refused.status, refused.message)
    if current_user.role in RESTRICTED_ROLES and parsed.study_uid is None:
        response = search_allowed_studies(parsed)
    else:
        audit_dicomweb_read(parsed)
        db.session.remove()  # release the database connection before a long download
        if parsed.is_series_metadata and "gzip" in request.accept_encodings:
            response = serve_series_metadata(parsed, dict(request.headers))
        else:
            response = relay(parsed, dict(request.headers))
    return response


def read_raw_path() -> str | None:
    """The path as the client sent it, when the server tells (waitress, gunicorn, werkzeug)."""
    raw = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI")
    return raw.partition("?")[0] if raw else None


def check_host(host: str) -> None:
    """The Host header goes into `Forwarded` (and so into BulkDataURIs): a plain host only."""
    if not HOST.fullmatch(host):
        raise RequestRefused(400, "malformed Host header")


def audit_dicomweb_read(parsed: DicomwebRequest) -> None:
    """Reads of a study once per user and hour (not per frame); each search without a study."""
    uids = [parsed.path_study_uid] if parsed.path_study_uid else list(parsed.query_study_uids)
    if not uids:
        audit("dicomweb.search", object_type="search", detail=build_orthanc_query(parsed.query))
    for uid in uids[:MAX_AUDITED_STUDIES]:
        audit_study_read("dicomweb.read", uid)
    db.session.commit()


def relay(parsed: DicomwebRequest, browser_headers: dict[str, str]) -> Any:
    headers = {name: browser_headers[name] for name in REQUEST_HEADERS if name in browser_headers}
    headers["Forwarded"] = forwarded_header(request.host, request.scheme)
    return forward(parsed, headers)


def forward(
    parsed: DicomwebRequest,
    headers: dict[str, str],
    keep: Callable[[Any, Iterator[bytes]], Iterator[bytes]] | None = None,
) -> Any:
    """The archive's answer streamed back (`keep` may tee the body), or its refusal in
    the portal's words."""
    try:
        upstream = open_archive(parsed, headers)
    except ArchiveTimeout:
        return deny(504, "the archive did not answer in time")
    except ArchiveUnavailable:
        return deny(502, "the archive is unreachable; try again in a moment")
    if upstream.status >= 400:
        return deny_archive_error(upstream)
    body = stream_body(upstream)  # needs no request context: the database session is released
    if keep is not None:
        body = keep(upstream, body)
    return Response(
        body, status=upstream.status, headers=relay_headers(upstream), direct_passthrough=True
    )


def serve_series_metadata(parsed: DicomwebRequest, browser_headers: dict[str, str]) -> Any:
    """A series' metadata from the cache while the series is unchanged, else from the archive
    (kept on the way through). The archive reads every instance's file to build it: minutes
    for thousands of instances on a busy machine, against a few milliseconds from the cache.

    The key names what the body depends on (`series_metadata_key`; the number of instances
    is asked of the archive each time, so a growing series is never served stale). The
    pipeline keeps a new series' body before anyone asks, for the origins and media types
    remembered here. Served only after the same checks and audit as any relayed request."""
    study_uid, series_uid = parsed.segments[1], parsed.segments[3]
    try:
        count = count_series_instances(study_uid, series_uid)
    except (ArchiveUnavailable, ValueError, KeyError, IndexError):
        return relay(parsed, browser_headers)
    cache: MetadataCache = current_app.extensions["pacs_metadata_cache"]
    series = f"{study_uid}/{series_uid}"
    if count is None:  # no such series (deleted?), or the archive cannot say
        cache.forget(series)
        return relay(parsed, browser_headers)
    accept = browser_headers.get("Accept", "")
    origin = forwarded_header(request.host, request.scheme)
    key = series_metadata_key(series, count, origin, accept)
    headers = {"Content-Type": "application/dicom+json", "Content-Encoding": "gzip"}
    cached = cache.open(series, key)
    if cached is not None:
        with contextlib.suppress(OSError):  # a hint for the pipeline, not the answer
            cache.remember_viewer(origin, accept)
        return Response(send_cached(cached), headers=headers, direct_passthrough=True)
    upstream_headers = {"Accept-Encoding": "gzip", "Forwarded": origin}
    if accept:
        upstream_headers["Accept"] = accept

    def keep(upstream: Any, body: Iterator[bytes]) -> Iterator[bytes]:
        if is_keepable(upstream):
            return cache.write_through(series, key, body, viewer=(origin, accept))
        return body

    return forward(parsed, upstream_headers, keep)


def count_series_instances(study_uid: str, series_uid: str) -> int | None:
    """The series' number of instances as the archive counts them now (QIDO-RS, through the
    viewer's own account); None when it has no such series."""
    client: ArchiveClient = current_app.extensions["pacs_viewer_archive"]
    answer = client.open_dicomweb(
        f"studies/{study_uid}/series",
        f"SeriesInstanceUID={series_uid}&includefield=00201209",
        {"Accept": "application/dicom+json"},
        timeout=UPSTREAM_TIMEOUT,
    )
    try:
        if answer.status != 200:
            return None
        found = json.loads(answer.read(decode_content=True) or b"[]")
    finally:
        answer.close()
    return int(found[0]["00201209"]["Value"][0]) if found else None


def send_cached(body: Any) -> Iterator[bytes]:
    with body:
        while chunk := body.read(CHUNK_SIZE):
            yield chunk


def deny_archive_error(upstream: Any) -> Any:
    """The archive's refusal in the portal's words; its own text goes to the log only."""
    status = upstream.status
    upstream.close()
    if status in (401, 403):
        current_app.logger.error("the archive refused the portal's credentials")
        return deny(502, "the archive refused the portal's credentials")
    if status >= 500:
        current_app.logger.error("the archive failed (HTTP %s) on a DICOMweb request", status)
        return deny(502, f"the archive failed (HTTP {status})")
    return deny(status, ARCHIVE_ERRORS.get(status, "the archive could not answer this request"))


def search_allowed_studies(parsed: DicomwebRequest) -> Any:
    """A referrer's or researcher's study search: Orthanc's answer, less the studies they
    may not see."""
    headers = {
        "Accept": "application/dicom+json",
        "Forwarded": forwarded_header(request.host, request.scheme),
    }
    try:
        upstream = open_archive(parsed, headers)
        body = upstream.read(decode_content=True)
    except ArchiveTimeout:
        return deny(504, "the archive did not answer in time")
    except ArchiveUnavailable:
        return deny(502, "the archive is unreachable; try again in a moment")
    if upstream.status != 200:
        return deny_archive_error(upstream)
    allowed = find_allowed_study_uids(read_study_uids(body))
    audit("dicomweb.search", object_type="search", detail=f"{len(allowed)} studies")
    db.session.commit()
    return Response(filter_studies(body, allowed), mimetype="application/dicom+json")


def open_archive(parsed: DicomwebRequest, headers: dict[str, str]) -> Any:
    """The archive, or the research Orthanc for a teaching copy kept there."""
    client: ArchiveClient = current_app.extensions["pacs_viewer_archive"]
    research = current_app.extensions.get("pacs_research_archive")
    if research is not None and parsed.study_uid:
        case = find_viewable_copy(db.session, parsed.study_uid)
        if case is not None and case.location == Location.RESEARCH:
            client = research
        db.session.remove()  # no database connection held through the download
    return client.open_dicomweb(
        parsed.upstream_path(),
        build_orthanc_query(parsed.query),
        headers,
        timeout=UPSTREAM_TIMEOUT,
    )


def may_view_study(study_uid: str) -> bool:
    """Radiologists and admins see every study's images; referrers their reported ones;
    researchers the teaching collection's copies."""
    if current_user.role not in RESTRICTED_ROLES:
        return True
    return bool(find_allowed_study_uids([study_uid]))


def find_allowed_study_uids(study_uids: list[str]) -> set[str]:
    if current_user.role == Role.RESEARCHER:
        return list_viewable_copy_uids(db.session, study_uids)
    return find_referred_study_uids(db.session, current_user.user, study_uids)


def limit_message() -> str:
    return RESEARCHER_LIMIT if current_user.role == Role.RESEARCHER else REFERRER_LIMIT


def init_viewer(app: Any) -> None:
    """One pooled archive connection set per portal: the viewer fetches many frames at once.

    It signs in with the viewer's own account, which Orthanc limits to GET /dicom-web/.
    """
    settings = app.config["PACS_SETTINGS"]
    app.extensions["pacs_metadata_cache"] = MetadataCache(settings.metadata_cache_dir)
    app.extensions["pacs_viewer_archive"] = ArchiveClient.viewer_from_settings(
        settings, timeout=UPSTREAM_TIMEOUT[1], pool_size=32
    )
    if settings.research_orthanc_url:  # where teaching copies are kept when it is configured
        app.extensions["pacs_research_archive"] = ArchiveClient(
            settings.research_orthanc_url,
            settings.research_orthanc_user,
            settings.research_orthanc_password,
            timeout=UPSTREAM_TIMEOUT[1],
        )
