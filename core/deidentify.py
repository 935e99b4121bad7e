"""De-identification by DICOM PS3.15 Annex E, driven by the table in `core/data/`.

The Basic Application Level Confidentiality Profile gives an action per attribute (X remove,
Z empty, D dummy, U new UID, K keep, C clean, and combinations); each option retains or cleans
some of them. `build_action_table` resolves the table once per option set; `Deidentifier`
applies it to a dataset in place, recursively inside sequences, touching only the elements
that need it (the others are never decoded, pixel data included).

Combined actions are resolved to the least destructive of their choices, which is valid in
every IOD (a Type 3 attribute may be empty or hold a dummy, a Type 1 one must hold a value):
X/Z -> Z, X/D, Z/D and X/Z/D -> D, X/Z/U* -> U (the sequence stays, its UIDs are replaced, so
references still resolve). Values of dummies and cleaned values carry no identifier.

New UIDs and pseudonyms are HMAC-SHA256 of the source value under a per-export secret salt:
the same source always maps to the same result within an export (every reference resolves)
and on a re-run of it, while nothing links them to the source without the salt.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID_dictionary

PROFILE_PATH = Path(__file__).with_name("data") / "ps3.15-annex-e-attributes.json"
DICOM_UID_ROOT = "1.2.840.10008."


class Option(StrEnum):
    """The Annex E options an export may choose (`--profile basic,<option>,...`)."""

    MODIFIED_DATES = "modified-dates"
    PATIENT_CHARACTERISTICS = "patient-characteristics"
    DEVICE_IDENTITY = "device-identity"
    INSTITUTION_IDENTITY = "institution-identity"
    CLEAN_DESCRIPTORS = "clean-descriptors"
    STRUCTURED_CONTENT = "structured-content"
    SAFE_PRIVATE = "safe-private"


# Option -> (column of the Annex E table, DCM code, code meaning) (PS3.16 CID 7050).
OPTION_COLUMNS: dict[Option, tuple[str, str, str]] = {
    Option.MODIFIED_DATES: (
        "rtnLongModifDatesOpt",
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.PATIENT_CHARACTERISTICS: (
        "rtnPatCharsOpt",
        "113108",
        "Retain Patient Characteristics Option",
    ),
    Option.DEVICE_IDENTITY: ("rtnDevIdOpt", "113109", "Retain Device Identity Option"),
    Option.INSTITUTION_IDENTITY: (
        "rtnInstIdOpt",
        "113112",
        "Retain Institution Identity Option",
    ),
    Option.CLEAN_DESCRIPTORS: ("cleanDescOpt", "113105", "Clean Descriptors Option"),
    Option.STRUCTURED_CONTENT: (
        "cleanStructContOpt",
        "113104",
        "Clean Structured Content Option",
    ),
    Option.SAFE_PRIVATE: ("rtnSafePrivOpt", "113111", "Retain Safe Private Option"),
}
BASIC_CODE = ("113100", "Basic Application Confidentiality Profile")
COMBINED_ACTIONS = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
PRIVATE_ACTION_ID = "ggggeeee-where-gggg-is-odd"
# Repeating groups of the table: curves (50xx) and overlays (60xx).
REPEATING_GROUPS = {"50xx": 0x5000, "60xx": 0x6000}

# Private elements kept with the safe-private option: (creator, element byte) known to carry
# no identifier. Deployments extend it through `Deidentifier(safe_private=...)`.
DEFAULT_SAFE_PRIVATE: frozenset[tuple[str, int]] = frozenset(
    {
        ("SIEMENS MR HEADER", 0x08),  # CSA slice measurement duration
        ("GEMS_ACQU_01", 0x01),  # number of cells in detector
        ("Philips MR Imaging DD 001", 0x06),  # image type MR
    }
)

DUMMY_VALUES: dict[str, object] = {
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "UR": "",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
}
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
BINARY_VRS = frozenset({"OB", "OW", "UN", "OD", "OF", "OL", "OV"})
FREE_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
DATE_PATTERN = re.compile(r"\d{8}")


class ProfileError(ValueError):
    """A profile string names an option this anonymizer does not know."""


def parse_profile(text: str) -> frozenset[Option]:
    """`basic[,option...]` -> the options; the basic profile is always applied."""
    parts = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not parts or parts[0] != "basic":
        raise ProfileError(f"profile {text!r} must start with 'basic'")
    known = {option.value: option for option in Option}
    unknown = [part for part in parts[1:] if part not in known]
    if unknown:
        raise ProfileError(
            f"unknown profile option(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return frozenset(known[part] for part in parts[1:])


def format_profile(options: Iterable[Option]) -> str:
    return ",".join(["basic", *sorted(option.value for option in options)])


@functools.cache
def load_annex_e() -> tuple[dict[str, str], ...]:
    """The vendored Annex E table, one dict per attribute (see core/data/ATTRIBUTION.md)."""
    return tuple(json.loads(PROFILE_PATH.read_text()))


def resolve_action(entry: dict[str, str], options: frozenset[Option]) -> str:
    """One attribute's action under `options`: a chosen option's C or K wins over the basic
    profile (C before K, cleaning being the safer of the two), else the basic action."""
    chosen = {
        entry[column]
        for o, (column, _, _) in OPTION_COLUMNS.items()
        if o in options and entry.get(column)
    }
    if "C" in chosen:
        return "C"
    if "K" in chosen:
        return "K"
    basic = entry["basicProfile"]
    return COMBINED_ACTIONS.get(basic, basic)


@dataclass(frozen=True)
class ActionTable:
    """Resolved actions: exact tags, repeating groups (by masked group) and private data."""

    tags: dict[int, str]
    repeating: dict[int, str]  # masked group (0x5000, 0x6000) -> action for the whole group
    private: str


@functools.cache
def build_action_table(options: frozenset[Option]) -> ActionTable:
    tags: dict[int, str] = {}
    repeating: dict[int, str] = {}
    private = "X"
    for entry in load_annex_e():
        action = resolve_action(entry, options)
        ident = entry["id"]
        if ident == PRIVATE_ACTION_ID:
            private = action
        elif ident[:4] in REPEATING_GROUPS:
            # The profile removes overlay and curve data; the rest of such a group is
            # meaningless (and invalid) without it, so the whole group goes or stays.
            group = REPEATING_GROUPS[ident[:4]]
            repeating[group] = "X" if "X" in (action, repeating.get(group)) else action
        else:
            tags[int(ident, 16)] = action
    return ActionTable(tags=tags, repeating=repeating, private=private)


@functools.cache
def vr_of(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def is_registered_uid(uid: str) -> bool:
    """A UID of the standard (SOP classes, transfer syntaxes, coding schemes): not identifying."""
    return uid.startswith(DICOM_UID_ROOT) or uid in UID_dictionary


def keyed_digest(salt: bytes, kind: str, value: str) -> bytes:
    return hmac.new(salt, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()


@dataclass
class Identity:
    """Who the source instance belongs to, and what it becomes."""

    pseudonym: str
    shift_days: int


@dataclass
class Deidentifier:
    """Applies the profile with the options of one export, keyed by its secret salt."""

    salt: bytes
    options: frozenset[Option] = frozenset()
    safe_private: frozenset[tuple[str, int]] = DEFAULT_SAFE_PRIVATE
    table: ActionTable = field(init=False)
    uid_cache: dict[str, str] = field(init=False, default_factory=dict)
    method_codes: list[tuple[str, str]] = field(init=False)
    method_items: list[Dataset] = field(init=False)

    def __post_init__(self) -> None:
        self.options = frozenset(self.options)
        self.table = build_action_table(self.options)
        self.method_codes = [BASIC_CODE] + [
            (code, meaning)
            for option, (_, code, meaning) in OPTION_COLUMNS.items()
            if option in self.options
        ]
        # Built once: every output carries the same items (they are only ever written).
        self.method_items = []
        for code, meaning in self.method_codes:
            item = Dataset()
            item.CodeValue = code
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            self.method_items.append(item)

    # -- keyed values -------------------------------------------------------------------

    def new_uid(self, uid: str) -> str:
        """The export's UID for `uid`: 2.25 + 128 bits of HMAC (at most 44 characters)."""
        mapped = self.uid_cache.get(uid)
        if mapped is None:
            number = int.from_bytes(keyed_digest(self.salt, "uid", uid)[:16], "big")
            mapped = self.uid_cache[uid] = f"2.25.{number}"
        return mapped

    def identity(self, patient_key: str) -> Identity:
        """A patient's pseudonym and date shift (30 days to 10 years back), from their ID."""
        digest = keyed_digest(self.salt, "patient", patient_key)
        code = base64.b32encode(digest[:10]).decode().rstrip("=")[:12]
        shift = 30 + int.from_bytes(digest[10:14], "big") % 3620
        return Identity(pseudonym=f"RES-{code}", shift_days=-shift)

    # -- the profile --------------------------------------------------------------------

    def deidentify(self, ds: Dataset, scrub: Callable[[str], str] = str) -> Identity:
        """De-identify `ds` in place; `scrub` removes the source's identifiers from text
        that the profile cleans (C). Returns the patient's identity in the export."""
        identity = self.identity(patient_key(ds))
        self.clean(ds, identity, scrub)
        self.mark(ds, identity)
        return identity

    def clean(
        self,
        ds: Dataset,
        identity: Identity,
        scrub: Callable[[str], str],
        in_content: bool = False,
    ) -> None:
        """Apply the table to `ds`; inside cleaned content (SR Content Sequence) free text
        outside the table is scrubbed as well."""
        tags = self.table.tags
        kept_private = self.safe_private_tags(ds)
        for tag in list(ds.keys()):
            group = tag >> 16
            element = tag & 0xFFFF
            if group & 1:
                if tag not in kept_private:
                    del ds[tag]
                continue
            if element == 0 and group != 0x0002:
                del ds[tag]  # group lengths would be wrong afterwards
                continue
            action = tags.get(tag)
            if action is None:
                masked = group & 0xFF00
                if masked in self.table.repeating and self.table.repeating[masked] == "X":
                    del ds[tag]
                    continue
                vr = vr_of(tag)
                if vr == "SQ":
                    self.clean_items(ds[tag].value, identity, scrub, in_content)
                elif vr == "UI":
                    self.replace_unregistered_uids(ds, tag)
                elif in_content and vr in FREE_TEXT_VRS:
                    elem = ds[tag]
                    elem.value = map_values(elem.value, lambda v: scrub(str(v)))
                continue
            if action == "K":
                if vr_of(tag) == "SQ":
                    self.clean_items(ds[tag].value, identity, scrub, in_content)
                continue
            if action == "X":
                del ds[tag]
                continue
            raw = ds.get_item(tag)
            if isinstance(raw, RawDataElement) and self.replace_raw(ds, tag, raw, action, identity):
                continue
            self.apply(ds[tag], action, identity, scrub)

    def replace_raw(
        self, ds: Dataset, tag: int, raw: RawDataElement, action: str, identity: Identity
    ) -> bool:
        """Z, D, U and date shifts straight from the undecoded value, the common case (a
        decoded element costs more to read and to write); False leaves it to `apply`."""
        vr = vr_of(tag) if raw.VR in (None, "UN") else raw.VR
        if vr == "SQ" or " " in vr:
            return False
        if not raw.value:
            return True
        if action == "Z":
            ds[tag] = DataElement(tag, vr, b"" if vr in BINARY_VRS else "")
        elif action == "U" or vr == "UI":
            uids = raw.value.decode("ascii", "replace").strip("\x00 ").split("\\")
            ds[tag] = DataElement(tag, "UI", unwrap([self.new_uid(u) if u else u for u in uids]))
        elif action == "D":
            ds[tag] = DataElement(tag, vr, DUMMY_VALUES.get(vr, b""))
        elif action == "C" and vr in ("DA", "DT") and Option.MODIFIED_DATES in self.options:
            dates = raw.value.decode("ascii", "replace").strip("\x00 ").split("\\")
            ds[tag] = DataElement(
                tag, vr, unwrap([shift_dates(d, identity.shift_days) for d in dates])
            )
        else:
            return False
        return True

    def apply(
        self, elem: DataElement, action: str, identity: Identity, scrub: Callable[[str], str]
    ) -> None:
        vr = elem.VR
        if vr == "SQ":
            if action == "Z":
                elem.value = Sequence()
            else:  # D, U, C: the items are de-identified in turn, their free text cleaned
                self.clean_items(elem.value, identity, scrub, action in ("C", "D"))
            return
        if elem.value is None or elem.value == "" or elem.value == b"":
            return
        if action == "Z":
            elem.value = b"" if vr in BINARY_VRS else ""
        elif action == "U" or vr == "UI":
            elem.value = self.map_uids(elem.value)
        elif action == "D":
            elem.value = DUMMY_VALUES.get(vr, b"")
        elif action == "C":
            elem.value = self.clean_value(elem, identity, scrub)

    def clean_value(
        self, elem: DataElement, identity: Identity, scrub: Callable[[str], str]
    ) -> object:
        vr = elem.VR
        if vr in ("DA", "DT"):
            if Option.MODIFIED_DATES not in self.options:
                return DUMMY_VALUES[vr]
            return map_values(elem.value, lambda v: shift_dates(v, identity.shift_days))
        if vr == "TM":
            return elem.value  # a whole-day shift leaves the time of day as it was
        if vr in TEXT_VRS:
            return map_values(elem.value, lambda v: scrub(str(v)))
        return elem.value

    def clean_items(
        self,
        items: Sequence,
        identity: Identity,
        scrub: Callable[[str], str],
        in_content: bool = False,
    ) -> None:
        for item in items:
            self.clean(item, identity, scrub, in_content)

    def map_uids(self, value: object) -> object:
        return map_values(value, lambda uid: self.new_uid(str(uid)) if uid else uid)

    def replace_unregistered_uids(self, ds: Dataset, tag: int) -> None:
        """UIDs outside the table (any but class UIDs of the standard) are replaced too."""
        keyword = keyword_for_tag(tag)
        if keyword.endswith(("ClassUID", "TransferSyntaxUID")):
            return
        elem = ds[tag]
        elem.value = map_values(
            elem.value,
            lambda uid: uid if not uid or is_registered_uid(str(uid)) else self.new_uid(str(uid)),
        )

    def safe_private_tags(self, ds: Dataset) -> set[int]:
        """Private elements of the safe list and their creators (with the safe-private
        option only); every other private element is removed."""
        if self.table.private != "C":
            return set()
        kept = set()
        for tag in list(ds.keys()):
            group = tag >> 16
            if group & 1 and (tag & 0xFFFF) >= 0x1000:
                creator_tag = (group << 16) | ((tag & 0xFF00) >> 8)
                creator = ds.get(creator_tag)
                if creator is not None and (str(creator.value), tag & 0xFF) in self.safe_private:
                    kept.update((tag, creator_tag))
        return kept

    def mark(self, ds: Dataset, identity: Identity) -> None:
        """Pseudonym, Patient Identity Removed and the method and options applied."""
        ds.PatientName = identity.pseudonym
        ds.PatientID = identity.pseudonym
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = (
            "MODIFIED" if Option.MODIFIED_DATES in self.options else "REMOVED"
        )
        ds.DeidentificationMethod = [meaning[:64] for _, meaning in self.method_codes]
        ds.DeidentificationMethodCodeSequence = self.method_items
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            kept = FileMetaDataset()
            kept.TransferSyntaxUID = meta.TransferSyntaxUID
            kept.MediaStorageSOPClassUID = ds.SOPClassUID
            kept.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            kept.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            ds.file_meta = kept


def patient_key(ds: Dataset) -> str:
    """What identifies the source patient: Patient ID, else name and birth date."""
    patient_id = str(ds.get("PatientID", "") or "")
    if patient_id:
        return f"id:{patient_id}"
    return f"name:{ds.get('PatientName', '')}|{ds.get('PatientBirthDate', '')}"


def unwrap(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def map_values(value: object, change: Callable[[object], object]) -> object:
    """Apply `change` to each value of a possibly multi-valued element."""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [change(item) for item in value]  # type: ignore[union-attr]
    return change(value)


def shift_dates(value: object, days: int) -> str:
    """Every YYYYMMDD in a DA/DT value (ranges too) moved by `days`; invalid ones dummied."""

    return DATE_PATTERN.sub(lambda match: shift_date(match.group(), days), str(value))


@functools.lru_cache(maxsize=4096)
def shift_date(text: str, days: int) -> str:
    try:
        day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return DUMMY_VALUES["DA"]  # type: ignore[return-value]
    return (day + datetime.timedelta(days=days)).strftime("%Y%m%d")
