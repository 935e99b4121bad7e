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
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom import Dataset
from pydicom.charset import python_encoding
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
UNTABLED_OF_INTEREST = frozenset({"SQ", "UI", "CS", "LO", "SH"})
MIN_LENGTH = 4
MIN_DIGITS = 6  # a purely numeric ID shorter than this matches too much by chance
MIN_NAME_PART = 3
PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
REMOVED = ""
IDENTIFIER_SHAPES = re.compile(r"\+?\d[\d ()./-]{5,}\d|[\w.+-]+@[\w-]+\.[\w.]+")


def collect_identifiers(ds: Dataset, table: ActionTable) -> set[str]:
    """Identifying values of `ds` that the profile does not keep (recursively)."""
    values = SourceValues()
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

    def collect(self, ds: Dataset, table: ActionTable) -> None:
        for tag in list(ds.keys()):
            if (tag >> 16) & 1:
                continue
            action = table.tags.get(tag)
            vr = vr_of(tag)
            if action is None and vr in ("CS", "LO", "SH"):
                self.kept.add(raw_text(ds.get_item(tag)).upper())  # cheap: left undecoded
                continue
            if action is None and vr not in ("SQ", "UI"):
                continue  # kept as is, and no identifier
            elem = ds[tag]
            if elem.VR == "SQ":
                for item in elem.value:
                    self.collect(item, table)
            else:
                self.add(elem, action)

    def add(self, elem: DataElement, action: str | None) -> None:
        vr = elem.VR
        keyword = elem.keyword or ""
        if action is None:
            # Outside the table: only UIDs the anonymizer replaces identify the source.
            if vr == "UI" and not keyword.endswith(("ClassUID", "TransferSyntaxUID")):
                self.found.update(v for v in values_of(elem) if v and not is_registered_uid(v))
            return
        if action == "K":
            self.retained.update(value.upper() for value in values_of(elem))
            return
        if action == "C" and vr not in ("DA", "DT"):
            return
        if vr in IDENTIFYING_VRS or IDENTIFYING_KEYWORD.search(keyword):
            for value in values_of(elem):
                if vr == "UI" and is_registered_uid(value):
                    continue
                self.found.add(value)
                if vr == "PN":
                    self.found.update(name_parts(value))
        elif DESCRIPTIVE_KEYWORD.search(keyword):
            self.descriptive.update(values_of(elem))


def raw_text(elem: DataElement | RawDataElement) -> str:
    if isinstance(elem, RawDataElement):
        return (elem.value or b"").decode("utf-8", "ignore")
    return str(elem.value)


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
    identify someone the instance itself does not name."""
    pattern = text_pattern(identifiers)

    def scrub(text: str) -> str:
        if pattern is not None:
            text = pattern.sub(REMOVED, text)
        return IDENTIFIER_SHAPES.sub(REMOVED, text).strip()

    return scrub


def text_pattern(identifiers: set[str]) -> re.Pattern[str] | None:
    if not identifiers:
        return None
    longest_first = sorted(identifiers, key=len, reverse=True)
    alternatives = [
        re.escape(value) if len(value) >= MIN_LENGTH else rf"\b{re.escape(value)}\b"
        for value in longest_first
    ]
    return re.compile("|".join(alternatives), re.IGNORECASE)


def bytes_pattern(identifiers: set[str], raw: set[bytes]) -> re.Pattern[bytes] | None:
    """Identifiers as bytes: UTF-8, Latin-1 where it differs, and as the source encoded them."""
    encoded = set(raw)
    for value in identifiers:
        if len(value) < MIN_LENGTH:
            continue
        encoded.add(value.encode("utf-8"))
        with contextlib.suppress(UnicodeEncodeError):
            encoded.add(value.encode("latin-1"))
    encoded = {value for value in encoded if len(value) >= MIN_LENGTH}
    if not encoded:
        return None
    return re.compile(b"|".join(re.escape(v) for v in sorted(encoded, key=len, reverse=True)), re.I)


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
    """Which source identifiers are still in the output, in its bytes (up to the pixel data,
    which holds no attribute) or its decoded text values; empty when it is clean."""
    leaks: set[str] = set()
    byte_search = bytes_pattern(identifiers, set(raw_names))
    if byte_search is not None:
        end = max(encoded.rfind(tag) for tag in PIXEL_DATA_TAGS)
        header = encoded if end < 0 else encoded[:end]
        leaks.update(match.decode("latin-1") for match in byte_search.findall(header))
        # The same bytes decoded as text in the output's character set: names written in
        # another encoding than UTF-8/Latin-1 are found by value too.
        text_search = text_pattern(identifiers)
        if text_search is not None:
            text = header.decode(text_codec(ds), "replace")
            leaks.update(text_search.findall(text))
    return sorted(leaks)


def text_codec(ds: Dataset) -> str:
    """The Python codec of the dataset's first character set (UTF-8 when unknown)."""
    charset = ds.get("SpecificCharacterSet", "")
    first = (
        charset[0]
        if isinstance(charset, list) or type(charset).__name__ == "MultiValue"
        else charset
    ) or "ISO_IR 6"
    return python_encoding.get(str(first).strip(), "utf-8")
