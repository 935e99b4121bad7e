"""Relaying the browser's DICOMweb requests to Orthanc: what goes out, what comes back.

The portal adds the archive's credentials itself; nothing of the browser's identity
(cookie, authorization) reaches Orthanc, and nothing of Orthanc's authentication
(WWW-Authenticate) reaches the browser. Bodies are streamed, never held whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from urllib.parse import quote

import urllib3

STUDY_UID_TAG = "0020000D"
# Headers of the browser passed on to Orthanc, and of Orthanc's answer passed back.
REQUEST_HEADERS = ("Accept", "Accept-Encoding", "If-None-Match", "If-Modified-Since", "Range")
RESPONSE_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    "Last-Modified",
)
# What the browser is told when the archive answers an error: never Orthanc's own text.
ARCHIVE_ERRORS = {
    400: "the archive could not answer this request",
    404: "not found in the archive",
    406: "the archive cannot answer in the accepted media types",
    416: "the requested range is not available",
}
CHUNK_SIZE = 256 * 1024
# Characters this Orthanc must receive literally: it does not percent-decode query strings
# (wildcards `*`/`?`, person-name `^`, comma lists, UID dots, ranges with `-`).
LITERAL_QUERY_CHARACTERS = "*?^,.-_:/\\=+"


def build_orthanc_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Parsed parameters, encoded the way this Orthanc reads them (it does not decode)."""
    return "&".join(
        f"{quote(key, safe='')}={quote(value, safe=LITERAL_QUERY_CHARACTERS)}"
        for key, value in pairs
    )


def forwarded_header(host: str, scheme: str) -> str:
    """RFC 7239 `Forwarded`, so Orthanc writes BulkDataURIs on the portal's origin.

    The host goes unquoted: this Orthanc copies the value verbatim, quotes included.
    """
    return f"host={host};proto={scheme}"


def relay_headers(upstream: urllib3.BaseHTTPResponse) -> dict[str, str]:
    return {name: upstream.headers[name] for name in RESPONSE_HEADERS if name in upstream.headers}


def stream_body(upstream: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """Orthanc's body as it arrives, still encoded (gzip stays gzip), then the connection freed."""
    try:
        yield from upstream.stream(CHUNK_SIZE, decode_content=False)
    finally:
        upstream.close()


def filter_studies(body: bytes, allowed: set[str]) -> bytes:
    """Keep only the QIDO study results whose Study Instance UID is in `allowed`."""
    results = json.loads(body or b"[]")
    kept = [item for item in results if read_study_uid(item) in allowed]
    return json.dumps(kept).encode()


def read_study_uids(body: bytes) -> list[str]:
    return [uid for uid in (read_study_uid(item) for item in json.loads(body or b"[]")) if uid]


def read_study_uid(item: dict) -> str | None:
    values = item.get(STUDY_UID_TAG, {}).get("Value") or [None]
    return values[0]
