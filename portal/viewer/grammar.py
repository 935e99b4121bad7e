"""The DICOMweb requests a viewer may make, parsed: anything else is refused before the archive.

The proxy never relays the browser's path or query. It parses them against the few
resources OHIF uses (QIDO-RS searches; WADO-RS metadata, frames, rendered, thumbnail and
bulk data as Orthanc writes its BulkDataURIs), checks every UID and parameter, and the
upstream request is built again from the parsed parts. Dot segments, encoded characters,
empty segments, backslashes, unknown words, repeated or unknown parameters are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

STUDY_UID_KEY = "StudyInstanceUID"
UID_KEYS = frozenset({STUDY_UID_KEY, "SeriesInstanceUID", "SOPInstanceUID"})
# Digits and dots, no empty component, at most 64 characters (PS3.5 9.1). Leading zeros are
# tolerated: an admin may release a study that has them, and they cannot change a path.
UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
UID_LIST_SEPARATOR = re.compile(r"[,\\]")
FRAME_LIST = re.compile(r"[1-9][0-9]{0,5}(?:,[1-9][0-9]{0,5}){0,255}")
TAG = re.compile(r"[0-9A-Fa-f]{8}")
SEQUENCE_INDEX = re.compile(r"0|[1-9][0-9]{0,5}")
KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
# Search values: printable text of a sensible length (names may be UTF-8).
SEARCH_VALUE = re.compile(r"[^\x00-\x1f\x7f]{0,256}")
# WADO-RS rendered parameters (PS3.18 8.3.5.1.3).
QUALITY = re.compile(r"[1-9][0-9]?|100")
VIEWPORT = re.compile(r"[0-9]{1,5},[0-9]{1,5}(?:,-?[0-9]{1,5},-?[0-9]{1,5}){0,2}")
NUMBER = r"-?[0-9]{1,7}(?:\.[0-9]{1,6})?"
WINDOW = re.compile(rf"{NUMBER},{NUMBER}(?:,(?:linear|linear-exact|sigmoid))?")
MAX_LIMIT = 1000
VIEWS = frozenset({"metadata", "rendered", "thumbnail"})


class RequestRefused(Exception):
    """A request outside the grammar: the status and a message for the browser."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class DicomwebRequest:
    """A parsed DICOMweb request: what to relay, and which study it names."""

    segments: tuple[str, ...]
    query: tuple[tuple[str, str], ...]
    is_search: bool
    path_study_uid: str | None
    query_study_uids: tuple[str, ...]

    @property
    def study_uid(self) -> str | None:
        """The one study the request names (by path or parameter), or None."""
        if self.path_study_uid:
            return self.path_study_uid
        return self.query_study_uids[0] if len(self.query_study_uids) == 1 else None

    @property
    def is_frame_data(self) -> bool:
        """Frames and bulk data: the many small requests of an opened series."""
        return len(self.segments) > 7 and self.segments[6] in ("frames", "bulk")

    @property
    def is_series_metadata(self) -> bool:
        """WADO-RS metadata of one series (studies/UID/series/UID/metadata)."""
        shape = (
            (self.segments[0], self.segments[2], self.segments[4])
            if len(self.segments) == 5
            else ()
        )
        return shape == ("studies", "series", "metadata") and not self.is_search

    def upstream_path(self) -> str:
        """The path under /dicom-web/ built from the parsed parts, each quoted."""
        return "/".join(quote(segment, safe=",") for segment in self.segments)


Matcher = Callable[[str], bool]


def is_uid(value: str) -> bool:
    return len(value) <= 64 and UID.fullmatch(value) is not None


def is_frame_list(value: str) -> bool:
    return FRAME_LIST.fullmatch(value) is not None


def is_view(value: str) -> bool:
    return value in VIEWS


# Each resource: the segments, literal words or matchers. "bulk" takes a tag path after it.
SEARCHES: tuple[tuple[str | Matcher, ...], ...] = (
    ("studies",),
    ("series",),
    ("instances",),
    ("studies", is_uid, "series"),
    ("studies", is_uid, "instances"),
    ("studies", is_uid, "series", is_uid, "instances"),
)
RETRIEVALS: tuple[tuple[str | Matcher, ...], ...] = (
    ("studies", is_uid, is_view),
    ("studies", is_uid, "series", is_uid, is_view),
    ("studies", is_uid, "series", is_uid, "instances", is_uid, is_view),
    ("studies", is_uid, "series", is_uid, "instances", is_uid, "frames", is_frame_list),
    ("studies", is_uid, "series", is_uid, "instances", is_uid, "frames", is_frame_list, is_view),
)
BULK_PREFIX: tuple[str | Matcher, ...] = (
    "studies", is_uid, "series", is_uid, "instances", is_uid, "bulk",
)  # fmt: skip


def parse_request(
    path: str, args: Iterable[tuple[str, str]], raw_path: str | None = None
) -> DicomwebRequest:
    """Parse a request under /dicom-web/ (`path` decoded, `raw_path` as sent, if known)."""
    check_segments(path, raw_path)
    segments = tuple(path.split("/"))
    pairs = list(args)
    if any(matches(segments, pattern) for pattern in SEARCHES):
        query = parse_search_query(pairs)
        is_search = True
    elif any(matches(segments, pattern) for pattern in RETRIEVALS) or is_bulk_path(segments):
        query = parse_rendered_query(pairs) if segments[-1] in ("rendered", "thumbnail") else ()
        if segments[-1] not in ("rendered", "thumbnail") and pairs:
            raise RequestRefused(400, "this resource takes no query parameters")
        is_search = False
    else:
        raise RequestRefused(404, "no such DICOMweb resource: studies, series or instances")
    path_study = segments[1] if segments[0] == "studies" and len(segments) > 1 else None
    query_studies = tuple(
        uid for key, value in query if key == STUDY_UID_KEY for uid in split_uids(value)
    )
    return DicomwebRequest(segments, query, is_search, path_study, query_studies)


def check_segments(path: str, raw_path: str | None) -> None:
    """Refuse what no DICOMweb client sends: encodings, backslashes, dot or empty segments."""
    if raw_path is not None and ("%" in raw_path or "\\" in raw_path):
        raise RequestRefused(400, "encoded characters and backslashes are not accepted")
    if not path or len(path) > 1024:
        raise RequestRefused(400, "malformed DICOMweb path")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise RequestRefused(400, "empty and dot path segments are not accepted")
        if not re.fullmatch(r"[A-Za-z0-9.,]+", segment):
            raise RequestRefused(400, "malformed DICOMweb path segment")


def matches(segments: tuple[str, ...], pattern: tuple[str | Matcher, ...]) -> bool:
    if len(segments) != len(pattern):
        return False
    return all(
        segment == part if isinstance(part, str) else part(segment)
        for segment, part in zip(segments, pattern, strict=True)
    )


def is_bulk_path(segments: tuple[str, ...]) -> bool:
    """Orthanc's BulkDataURIs: .../instances/{uid}/bulk/{tag}[/{index}/{tag}]..."""
    prefix, tail = segments[: len(BULK_PREFIX)], segments[len(BULK_PREFIX) :]
    if not matches(prefix, BULK_PREFIX) or len(tail) % 2 == 0:
        return False
    tags, indexes = tail[0::2], tail[1::2]
    return all(TAG.fullmatch(tag) for tag in tags) and all(
        SEQUENCE_INDEX.fullmatch(index) for index in indexes
    )


def parse_search_query(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """QIDO-RS parameters: attribute keywords, includefield, limit, offset, fuzzymatching."""
    seen: set[str] = set()
    query: list[tuple[str, str]] = []
    for key, value in pairs:
        if key == "includefield":
            query.extend((key, field) for field in parse_include_fields(value))
            continue
        key = keyword_of_tag(key)
        if key in seen:
            raise RequestRefused(400, f"parameter {key!r} is given more than once")
        seen.add(key)
        query.append((key, parse_search_value(key, value)))
    return tuple(query)


def keyword_of_tag(key: str) -> str:
    """OHIF names some search attributes by tag (`00100020=...`): such a key becomes its
    keyword, so that every later check (study UIDs above all) sees one spelling."""
    if not TAG.fullmatch(key):
        return key
    keyword = keyword_for_tag(int(key, 16))
    if not keyword:
        raise RequestRefused(400, f"unknown search parameter {key!r}: use attribute keywords")
    return keyword


def parse_include_fields(value: str) -> list[str]:
    fields = [field for field in value.split(",") if field]
    for field in fields:
        if field != "all" and not TAG.fullmatch(field) and not is_keyword(field):
            raise RequestRefused(400, "includefield takes attribute keywords or tags")
    return fields


def parse_search_value(key: str, value: str) -> str:
    if key in ("limit", "offset"):
        if not value.isdigit() or (key == "limit" and not 0 < int(value) <= MAX_LIMIT):
            raise RequestRefused(400, f"{key} must be a number (limit at most {MAX_LIMIT})")
        return value
    if key == "fuzzymatching":
        if value not in ("true", "false"):
            raise RequestRefused(400, "fuzzymatching is true or false")
        return value
    if not is_keyword(key):
        raise RequestRefused(400, f"unknown search parameter {key[:64]!r}: use attribute keywords")
    if key in UID_KEYS:
        if not all(is_uid(uid) for uid in split_uids(value)):
            raise RequestRefused(400, f"{key} takes UIDs (a list separated by commas)")
        return value
    if not SEARCH_VALUE.fullmatch(value):
        raise RequestRefused(400, f"{key} has an unacceptable value")
    return value


def is_keyword(name: str) -> bool:
    """A DICOM attribute keyword of the dictionary (not a sequence, not a tag number)."""
    if not KEYWORD.fullmatch(name):
        return False
    tag = tag_for_keyword(name)
    return tag is not None and dictionary_VR(tag) != "SQ"


def split_uids(value: str) -> list[str]:
    return UID_LIST_SEPARATOR.split(value)


RENDERED_PARAMETERS = {"quality": QUALITY, "viewport": VIEWPORT, "window": WINDOW}


def parse_rendered_query(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    for key, value in pairs:
        pattern = RENDERED_PARAMETERS.get(key)
        if pattern is None:
            raise RequestRefused(400, f"unknown rendering parameter {key[:64]!r}")
        if key in seen:
            raise RequestRefused(400, f"parameter {key!r} is given more than once")
        if not pattern.fullmatch(value):
            raise RequestRefused(400, f"{key} has an unacceptable value")
        seen.add(key)
    return tuple(pairs)


def check_single_study(request: DicomwebRequest) -> str | None:
    """For users limited to some studies: the one study named once, or why not.

    A study search without any study is allowed (its answer is filtered); everything else
    names exactly one study, by path or by one StudyInstanceUID, never both.
    """
    if request.path_study_uid and request.query_study_uids:
        raise RequestRefused(400, "name the study once: by path or by StudyInstanceUID")
    if len(request.query_study_uids) > 1:
        raise RequestRefused(403, "you may only ask for one study at a time")
    if request.study_uid is None and request.segments != ("studies",):
        raise RequestRefused(403, "searches of series and instances must name the study")
    return request.study_uid
