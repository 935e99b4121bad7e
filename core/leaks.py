"""The identifying values of a source instance, and the search for them in its de-identified copy.

An instance is only released when none of its source's names, IDs, accession numbers,
dates (other than shifted ones), UIDs, institution and physician names, addresses or phone
numbers appears anywhere in the output: in the encoded bytes (every attribute, sequence and
private element, in the source's own character set and in UTF-8/Latin-1) and in the decoded
text values. Values shorter than four characters (a sex, a one-digit study ID) are too
common to search for as bytes; name parts of three are searched as whole words in text.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom import Dataset
from pydicom.charset import python_encoding
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement

from core.deidentify import ActionTable, is_registered_uid, vr_of

IDENTIFYING_VRS = frozenset({"PN", "DA", "DT", "UI"})
# Always identifying: IDs, numbers, addresses, phone numbers (besides PN, dates and UIDs).
IDENTIFYING_KEYWORD = re.compile(
    r"(ID|IDs|Number|Numbers|Address|Telephone\w*|Phone\w*|Email\w*|Identifier|Accession\w*)$"
)
# Identifying unless the source keeps the same value elsewhere (a Station Name that is the
# Manufacturer's name identifies nothing the kept Manufacturer does not already show).
DESCRIPTIVE_KEYWORD = re.compile(r"(Name|Names|Institution\w*|Department\w*|Location|Station\w*)$")
# Outside the table: sequences (their items), UIDs (replaced unless of the standard) and
# short texts (values the source keeps, see DESCRIPTIVE_KEYWORD).
BINARY_VRS = frozenset(
    {"OB", "OW", "UN", "OD", "OF", "OL", "OV", "FL", "FD", "SL", "SS", "UL", "US"}
)
UNTABLED_OF_INTEREST = frozenset({"SQ", "UI", "CS", "LO", "SH"})
MIN_LENGTH = 4
MIN_DIGITS = 6  # a purely numeric ID shorter than this matches too much by chance
MIN_NAME_PART = 3
PIXEL_DATA_TAG = 0x7FE00010
PIXEL_DATA_BYTES = b"\xe0\x7f\x10\x00"  # its tag, little endian
REMOVED = ""
IDENTIFIER_SHAPES = re.compile(r"\+?\d[\d ()./-]{5,}\d|[\w.+-]+@[\w-]+\.[\w.]+")


def collect_identifiers(ds: Dataset, table: ActionTable) -> set[str]:
    """Identifying values of `ds` that the profile does not keep (recursively)."""
    charset = ds.get("SpecificCharacterSet", "")
    single = isinstance(charset, str) and not charset.startswith("ISO 2022")
    values = SourceValues(codec=text_codec(ds) if single else "")
    values.collect(ds, table)
    found = values.found | {
        value for value in values.descriptive if not any(value.upper() in k for k in values.kept)
    }
    return {
        value for value in found if is_searchable(value) and value.upper() not in values.retained
    }


@dataclass
class SourceValues:
    found: set[str] = field(default_factory=set)  # identifying
    descriptive: set[str] = field(default_factory=set)  # identifying unless kept elsewhere
    kept: set[str] = field(default_factory=set)  # short texts outside the table
    retained: set[str] = field(default_factory=set)  # values an option keeps (K in the table)
    codec: str = "utf-8"  # of the source's character set; "" when pydicom must decode

    def collect(self, ds: Dataset, table: ActionTable) -> None:
        """Decodes only the elements whose values matter here; the rest stay raw."""
        for tag in list(ds.keys()):
            if (tag >> 16) & 1:
                continue
            action = table.tags.get(tag)
            vr = vr_of(tag)
            if vr == "SQ":
                for item in ds[tag].value:
                    self.collect(item, table)
                continue
            if action is None:
                if vr in ("CS", "LO", "SH"):
                    self.kept.update(raw_values(ds.get_item(tag), self.codec))
                elif vr == "UI" and not keyword_of(tag).endswith(("ClassUID", "SyntaxUID")):
                    # Outside the table: UIDs the anonymizer replaces identify the source.
                    uids = raw_values(ds.get_item(tag), self.codec)
                    self.found.update(uid for uid in uids if not is_registered_uid(uid))
                continue
            if action == "K":
                self.retained.update(raw_values(ds.get_item(tag), self.codec))
                continue
            if action == "C" and vr not in ("DA", "DT"):
                continue
            keyword = keyword_of(tag)
            if vr in IDENTIFYING_VRS or IDENTIFYING_KEYWORD.search(keyword):
                for value in self.values(ds, tag):
                    if vr == "UI" and is_registered_uid(value):
                        continue
                    self.found.add(value)
                    if vr == "PN":
                        self.found.update(name_parts(value))
            elif DESCRIPTIVE_KEYWORD.search(keyword):
                self.descriptive.update(self.values(ds, tag))

    def values(self, ds: Dataset, tag: int) -> list[str]:
        """An element's values, decoded here when its character set allows (cheaper)."""
        raw = ds.get_item(tag)
        if self.codec and isinstance(raw, RawDataElement) and vr_of(tag) not in BINARY_VRS:
            text = (raw.value or b"").decode(self.codec, "replace")
            return [v.strip(" \x00") for v in text.split("\\") if v.strip(" \x00")]
        return values_of(ds[tag])


@functools.cache
def keyword_of(tag: int) -> str:
    return keyword_for_tag(tag)


def raw_values(elem: DataElement | RawDataElement, codec: str) -> list[str]:
    """Upper-cased values of a short text or UID element, decoded without pydicom's help."""
    if isinstance(elem, RawDataElement):
        text = (elem.value or b"").decode(codec, "replace")
    else:
        text = "\\".join(values_of(elem))
    return [value.strip(" \x00").upper() for value in text.split("\\") if value.strip(" \x00")]


def values_of(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, bytes):
        return []
    items = value if isinstance(value, list) or type(value).__name__ == "MultiValue" else [value]
    return [str(item).strip() for item in items if str(item).strip()]


def name_parts(name: str) -> set[str]:
    """Family, given, middle names of a PN (all representations), each on its own."""
    return {part.strip() for part in re.split(r"[\^=]", name) if part.strip()}


def is_searchable(value: str) -> bool:
    """Long enough, and not a run of one character ('----', '00000000'), to mean something."""
    characters = {c for c in value.lower() if c.isalnum()}
    if len(characters) < 2:
        return False
    if value.isdigit():
        return len(value) >= MIN_DIGITS
    return len(value) >= MIN_NAME_PART


def make_scrubber(identifiers: set[str]) -> Callable[[str], str]:
    """Removes every identifier (case-insensitive) from free text the profile cleans, and
    anything shaped like a phone number, long number, date or e-mail address, which may
    identify someone the instance itself does not name. The pattern is only built for an
    instance that has text to clean."""

    def scrub(text: str) -> str:
        pattern = text_pattern(frozenset(identifiers))
        if pattern is not None:
            text = pattern.sub(REMOVED, text)
        return IDENTIFIER_SHAPES.sub(REMOVED, text).strip()

    return scrub


@functools.lru_cache(maxsize=64)
def text_pattern(identifiers: frozenset[str]) -> re.Pattern[str] | None:
    if not identifiers:
        return None
    longest_first = sorted(identifiers, key=len, reverse=True)
    alternatives = [
        re.escape(value) if len(value) >= MIN_LENGTH else rf"\b{re.escape(value)}\b"
        for value in longest_first
    ]
    return re.compile("|".join(alternatives), re.IGNORECASE)


def byte_needles(identifiers: set[str], raw: set[bytes]) -> set[bytes]:
    """Identifiers as lower-case bytes: UTF-8, Latin-1, and as the source encoded them."""
    encoded = set(raw)
    for value in identifiers:
        encoded.add(value.encode("utf-8"))
        with contextlib.suppress(UnicodeEncodeError):
            encoded.add(value.encode("latin-1"))
    return {value.lower() for value in encoded if len(value) >= MIN_LENGTH}


def raw_name_bytes(ds: Dataset) -> set[bytes]:
    """Person names as the source encoded them (any character set), whole and in parts."""
    found: set[bytes] = set()
    for tag in list(ds.keys()):
        if (tag >> 16) & 1:
            continue
        raw = ds.get_item(tag)
        vr = vr_of(tag)
        if vr == "PN" and isinstance(raw, RawDataElement) and raw.value:
            value = raw.value.rstrip(b" \x00")
            found.add(value)
            found.update(p for p in re.split(rb"[\^=]", value) if len(p) >= MIN_LENGTH)
        elif vr == "SQ":
            for item in ds[tag].value:
                found |= raw_name_bytes(item)
    return found


def find_leaks(
    encoded: bytes,
    ds: Dataset,
    identifiers: set[str],
    raw_names: set[bytes] = frozenset(),  # type: ignore[assignment]
) -> list[str]:
    """Which source identifiers are still in the output: in its bytes up to the pixel data
    (which holds no attribute), and in those bytes decoded in its character set; empty
    when it is clean. Plain substring searches on lower-cased copies, in C."""
    header = header_of(encoded, ds).lower()
    leaks = {
        needle.decode("latin-1")
        for needle in byte_needles(identifiers, raw_names)
        if needle in header
    }
    text = header.decode(text_codec(ds), "replace").lower()
    for value in identifiers:
        if len(value) >= MIN_LENGTH:
            if value.lower() in text:
                leaks.add(value)
        elif re.search(rf"\b{re.escape(value.lower())}\b", text):
            leaks.add(value)
    return sorted(leaks)


def header_of(encoded: bytes, ds: Dataset) -> bytes:
    """The encoded file without its pixel data, the last element: found from its length."""
    pixels = ds.get(PIXEL_DATA_TAG)
    if pixels is None or not isinstance(pixels.value, bytes):
        return encoded
    value_start = len(encoded) - len(pixels.value)
    start = encoded.rfind(PIXEL_DATA_BYTES, max(0, value_start - 24), value_start)
    return encoded if start < 0 else encoded[:start]


def text_codec(ds: Dataset) -> str:
    """The Python codec of the dataset's first character set (UTF-8 when unknown)."""
    charset = ds.get("SpecificCharacterSet", "")
    first = (
        charset[0]
        if isinstance(charset, list) or type(charset).__name__ == "MultiValue"
        else charset
    ) or "ISO_IR 6"
    return python_encoding.get(str(first).strip(), "utf-8")
