"""Read values out of Orthanc's short tag format (`/instances-tags?short`).

That format maps "gggg,eeee" to a string (several values joined by a
backslash), a list of items for a sequence, or null for binary values such as
pixel data. Working on it directly, rather than building pydicom datasets,
keeps a 1,000-instance study to milliseconds.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

Tags = dict[str, Any]

PATIENT_NAME = "0010,0010"
PATIENT_ID = "0010,0020"
ISSUER_OF_PATIENT_ID = "0010,0021"
PATIENT_BIRTH_DATE = "0010,0030"
PATIENT_SEX = "0010,0040"
SPECIFIC_CHARACTER_SET = "0008,0005"
SOP_CLASS_UID = "0008,0016"
SOP_INSTANCE_UID = "0008,0018"
STUDY_DATE = "0008,0020"
STUDY_TIME = "0008,0030"
ACQUISITION_DATE = "0008,0022"
CONTENT_DATE = "0008,0023"
ACQUISITION_DATETIME = "0008,002a"
ACQUISITION_TIME = "0008,0032"
CONTENT_TIME = "0008,0033"
ACCESSION_NUMBER = "0008,0050"
MODALITY = "0008,0060"
INSTITUTION_NAME = "0008,0080"
REFERRING_PHYSICIAN_NAME = "0008,0090"
STUDY_DESCRIPTION = "0008,1030"
SERIES_DESCRIPTION = "0008,103e"
BODY_PART_EXAMINED = "0018,0015"
STUDY_INSTANCE_UID = "0020,000d"
STUDY_ID = "0020,0010"
SERIES_INSTANCE_UID = "0020,000e"
SERIES_NUMBER = "0020,0011"
SAMPLES_PER_PIXEL = "0028,0002"
ROWS = "0028,0010"
COLUMNS = "0028,0011"
BITS_ALLOCATED = "0028,0100"
BITS_STORED = "0028,0101"
HIGH_BIT = "0028,0102"
REQUESTED_PROCEDURE_PRIORITY = "0040,1003"
ISSUE_DATE_OF_REQUEST = "0040,2004"
ISSUE_TIME_OF_REQUEST = "0040,2005"
PIXEL_DATA = "7fe0,0010"
FLOAT_PIXEL_DATA = "7fe0,0008"
DOUBLE_PIXEL_DATA = "7fe0,0009"

# Every tag ingestion reads (every constant above, so a tag added here is never dropped): an
# instance's other tags (hundreds for a CT slice) are dropped as its answer is parsed, so a
# big study is held as these few values per instance.
INGEST_TAGS = frozenset(
    value
    for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, str) and re.fullmatch(r"[0-9a-f]{4},[0-9a-f]{4}", value)
)


def keep_ingest_tags(tags: Tags, shared: dict[str, str]) -> Tags:
    """The instance's INGEST_TAGS only, each text value shared through `shared` with the
    instances before it (a study's 3,000 instances hold its patient name once, not 3,000
    times)."""
    kept = {}
    for tag in INGEST_TAGS:  # the keys kept are these constants, not the answer's copies
        if tag in tags:
            value = tags[tag]
            kept[tag] = shared.setdefault(value, value) if isinstance(value, str) else value
    return kept


BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})


def tags_from_dataset(ds: Dataset) -> Tags:
    """A dataset in Orthanc's short tag format: what ingestion would read from the archive
    once it holds the dataset (binary values null, sequences as lists of items)."""
    tags: Tags = {}
    for element in ds:
        key = f"{element.tag.group:04x},{element.tag.element:04x}"
        if element.VR == "SQ":
            tags[key] = [tags_from_dataset(item) for item in element.value]
        elif element.VR in BINARY_VRS or element.value is None:
            tags[key] = None
        elif isinstance(element.value, MultiValue):
            tags[key] = "\\".join(str(value) for value in element.value)
        else:
            tags[key] = str(element.value)
    return tags


def get_text(tags: Tags, tag: str) -> str:
    """The element's whole value as text, '' when absent, empty, binary or a sequence."""
    value = tags.get(tag)
    return value.strip() if isinstance(value, str) else ""


def get_values(tags: Tags, tag: str) -> list[str]:
    """The element's values, split on the backslash."""
    text = get_text(tags, tag)
    return [part.strip() for part in text.split("\\")] if text else []


def get_int(tags: Tags, tag: str) -> int | None:
    """The first value as an integer, None when absent or not a number."""
    values = get_values(tags, tag)
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None


def has_element(tags: Tags, tag: str) -> bool:
    """True when the element is present, even as a binary value Orthanc does not show."""
    return tag in tags


def parse_date(text: str) -> datetime.date | None:
    """A DA value (YYYYMMDD) as a date; None when empty or malformed."""
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def parse_time(text: str) -> datetime.time | None:
    """A TM value (HH[MM[SS[.FFFFFF]]]) as a time; None when empty or malformed."""
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6) or (fraction and not fraction.isdigit()):
        return None
    hour, minute, second = int(whole[:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
    micro = int((fraction + "000000")[:6]) if fraction else 0
    try:
        return datetime.time(hour, minute, min(second, 59), micro)
    except ValueError:
        return None
