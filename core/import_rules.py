"""Importing studies from files: what a file is, how to make it a proper Part 10 file,
which ZIP members are safe to read, which files of a tree to import, and the summary.

Pure logic on bytes and names; reading folders and archives and sending to the archive
live in `storage/import_sender.py`.

Decisions (documented in the README):
- A file is imported when it is a Part 10 file (preamble, "DICM", file meta), a file
  meta + data set without the preamble, or a bare data set (no file meta). The last two
  are wrapped into Part 10 by prepending what is missing; the data set bytes are kept
  exactly as they were.
- A file whose elements declare more bytes than it holds is *truncated* and refused
  (pydicom reads such files without complaint, so the element structure is walked here).
- "Already in the archive" means the archive holds an instance with the same SOP Instance
  UID and the same content: the same data set bytes (the file meta only says who wrote
  the file, so it is not compared). A different instance under the same UID is refused.
"""

from __future__ import annotations

import enum
import hashlib
import io
import posixpath
import stat
import struct
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

PREAMBLE = bytes(128)
PREFIX = b"DICM"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
UNDEFINED_LENGTH = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
MEDIA_SOP_CLASS, TRANSFER_SYNTAX = 0x00020002, 0x00020010
SOP_CLASS, SOP_INSTANCE, STUDY_INSTANCE = 0x00080016, 0x00080018, 0x0020000D
# Explicit VRs with a 2-byte reserved field and a 4-byte length.
LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
KNOWN_VRS = LONG_VRS | frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split()
)

# ZIP safety: members are streamed one at a time, never extracted by name.
MAX_MEMBER_BYTES = 4 * 1024**3
MAX_ARCHIVE_BYTES = 256 * 1024**3
MAX_MEMBERS = 500_000
MAX_RATIO = 200  # uncompressed/compressed, checked above RATIO_FLOOR bytes
RATIO_FLOOR = 16 * 1024**2
# A bare data set is only called truncated once a few elements read well; before, it is
# more likely some other file that happens to start like one.
RAW_ELEMENTS_BEFORE_TRUNCATED = 3

IGNORED_FOLDERS = frozenset({"__MACOSX"})
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
# What the platform's own exports carry beside the images (research exports, teaching files),
# at the top of their ZIP: a ZIP of ours imports without a rejection.
EXPORT_MANIFEST_NAMES = frozenset(
    {"manifest.csv", "deidentification-report.json", "teaching-manifest.json"}
)


class Outcome(enum.StrEnum):
    STORED = "stored"
    ALREADY_STORED = "already_stored"  # same SOP Instance UID and content: skipped
    REJECTED = "rejected"
    IGNORED = "ignored"  # not an instance and not an error: a DICOMDIR, media clutter


class Refusal(enum.StrEnum):
    NOT_DICOM = "not_dicom"
    TRUNCATED = "truncated"
    NO_SOP_INSTANCE_UID = "no_sop_instance_uid"
    ARCHIVE_REFUSED = "archive_refused"
    DIFFERENT_CONTENT = "different_content"  # another instance under the same UID
    UNSAFE_ARCHIVE = "unsafe_archive"  # ZIP bomb, path traversal, links, encryption
    UNREADABLE = "unreadable"  # the file or member could not be read
    NOT_SENT = "not_sent"  # the archive failed before this file's turn
    TOO_LARGE = "too_large"  # larger than PACS_IMPORT_MAX_MB: refused unread


class NotImportable(Exception):
    """This file is not an instance the archive should receive; `refusal` says why."""

    def __init__(self, refusal: Refusal | None, reason: str) -> None:
        super().__init__(reason)
        self.refusal = refusal  # None: nothing wrong, just not an instance (a DICOMDIR)
        self.reason = reason


class Truncated(Exception):
    """The element structure ends before an element's declared length."""


class Malformed(Exception):
    """The bytes do not follow DICOM's element structure."""


@dataclass(frozen=True)
class PreparedInstance:
    """A file ready for the archive: proper Part 10 bytes and the UIDs read from it."""

    part10: bytes
    sop_instance_uid: str
    study_instance_uid: str
    dataset_offset: int  # where the data set starts in `part10` (after the file meta)
    wrapped: bool  # the preamble or the file meta were added here

    @property
    def file_md5(self) -> str:
        return hashlib.md5(self.part10, usedforsecurity=False).hexdigest()


@dataclass
class FileResult:
    name: str
    outcome: Outcome
    size: int = 0
    refusal: Refusal | None = None
    reason: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""


@dataclass
class ImportSummary:
    files: list[FileResult] = field(default_factory=list)
    elapsed: float = 0.0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for result in self.files if result.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        return {outcome.value: self.count(outcome) for outcome in Outcome}

    @property
    def rejected(self) -> list[FileResult]:
        return [result for result in self.files if result.outcome == Outcome.REJECTED]

    @property
    def study_uids(self) -> list[str]:
        """Studies that received or already held an instance of this import, in file order."""
        seen = {
            r.study_instance_uid: None
            for r in self.files
            if r.outcome in (Outcome.STORED, Outcome.ALREADY_STORED) and r.study_instance_uid
        }
        return list(seen)

    @property
    def stored_bytes(self) -> int:
        return sum(r.size for r in self.files if r.outcome == Outcome.STORED)

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "elapsed_seconds": round(self.elapsed, 3),
            "studies": self.study_uids,
            "files": [
                {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in asdict(r).items()}
                for r in self.files
            ],
        }

    def describe(self) -> str:
        """One line of counts, as the command and the audit trail show them."""
        c = self.counts
        return (
            f"{c['stored']} stored, {c['already_stored']} already in the archive, "
            f"{c['rejected']} rejected, {c['ignored']} ignored"
        )


# -- one file -------------------------------------------------------------------------


# The first bytes of a file tell whether it can be an instance; the rest of a file that
# cannot is never read (a 2 GB video in a ZIP costs one read of this size).
HEAD_BYTES = 64 * 1024


def prepare_instance(data: bytes) -> PreparedInstance:
    """Classify `data` and return it as a Part 10 file, or raise NotImportable."""
    if not data:
        raise NotImportable(Refusal.NOT_DICOM, "not DICOM: an empty file")
    if len(data) >= 132 and data[128:132] == PREFIX:
        return read_part10(data, wrapped=False)
    if is_stripped_part10(data):
        # File meta without the preamble and prefix (a stripped Part 10 file).
        return read_part10(PREAMBLE + PREFIX + data, wrapped=True)
    if data[:2] == b"\x08\x00":
        return wrap_dataset(data)
    if len(data) < 132 and PREFIX.startswith(data[128:]) and not any(data[:128]):
        raise NotImportable(Refusal.TRUNCATED, "truncated: the file ends inside the preamble")
    raise refuse_head(data)


def is_stripped_part10(data: bytes) -> bool:
    return data[:2] == b"\x02\x00" and data[4:6] in KNOWN_VRS


def check_head(head: bytes) -> None:
    """Raise NotImportable when the first HEAD_BYTES of a longer file show it is no instance."""
    if head[128:132] == PREFIX or is_stripped_part10(head) or head[:2] == b"\x08\x00":
        return
    raise refuse_head(head)


def refuse_head(head: bytes) -> NotImportable:
    if is_zip(head):
        return NotImportable(
            Refusal.NOT_DICOM, "a ZIP archive inside an archive: extract it and import the folder"
        )
    return NotImportable(Refusal.NOT_DICOM, "not DICOM")


def read_part10(part10: bytes, *, wrapped: bool) -> PreparedInstance:
    """Walk the file meta and the data set (reading the UIDs on the way: no full parse)."""
    meta = dict.fromkeys((MEDIA_SOP_CLASS, TRANSFER_SYNTAX), "")
    try:
        meta_end = walk_file_meta(part10, meta)
    except Truncated as error:
        raise NotImportable(Refusal.TRUNCATED, f"truncated: {error}") from None
    except Malformed as error:
        raise NotImportable(Refusal.NOT_DICOM, f"not DICOM: {error}") from None
    if meta[MEDIA_SOP_CLASS] == MEDIA_STORAGE_DIRECTORY:
        raise NotImportable(None, "DICOMDIR: the media's index, its referenced files are imported")
    transfer_syntax = meta[TRANSFER_SYNTAX]
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        # Compressed as a whole: pydicom inflates it (and fails if it is cut short).
        ds = read_uids(part10)
        uids = {
            SOP_INSTANCE: ds.get("SOPInstanceUID", ""),
            STUDY_INSTANCE: ds.get("StudyInstanceUID", ""),
        }
    else:
        uids = dict.fromkeys((SOP_CLASS, SOP_INSTANCE, STUDY_INSTANCE), "")
        check_complete(
            part10,
            meta_end,
            implicit=transfer_syntax == ImplicitVRLittleEndian,
            little=transfer_syntax != ExplicitVRBigEndian,
            found=uids,
        )
    return make_prepared(part10, uids, meta_end, wrapped=wrapped)


def wrap_dataset(data: bytes) -> PreparedInstance:
    """A bare data set: prepend a preamble and a file meta naming its own encoding."""
    implicit = data[4:6] not in KNOWN_VRS
    uids = dict.fromkeys((SOP_CLASS, SOP_INSTANCE, STUDY_INSTANCE), "")
    try:
        walk_elements(data, 0, len(data), implicit=implicit, little=True, raw=True, found=uids)
    except Truncated as error:
        raise NotImportable(Refusal.TRUNCATED, f"truncated: {error}") from None
    except Malformed as error:
        raise NotImportable(Refusal.NOT_DICOM, f"not DICOM: {error}") from None
    if not uids[SOP_INSTANCE]:
        raise NotImportable(Refusal.NO_SOP_INSTANCE_UID, "no SOP Instance UID")
    if not uids[SOP_CLASS]:
        raise NotImportable(Refusal.NOT_DICOM, "data set without SOP Class UID: cannot wrap it")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = uids[SOP_CLASS]
    meta.MediaStorageSOPInstanceUID = uids[SOP_INSTANCE]
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    buffer = DicomBytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)
    header = PREAMBLE + PREFIX + buffer.getvalue()
    return make_prepared(header + data, uids, len(header), wrapped=True)


def read_uids(data: bytes) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(
            io.BytesIO(data),
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"],
        )
    except (InvalidDicomError, ValueError, EOFError, struct.error) as error:
        raise NotImportable(Refusal.NOT_DICOM, f"not DICOM: {error}") from None


def make_prepared(
    part10: bytes, uids: dict[int, str], dataset_offset: int, *, wrapped: bool
) -> PreparedInstance:
    sop_instance = str(uids[SOP_INSTANCE] or "").strip()
    if not sop_instance:
        raise NotImportable(Refusal.NO_SOP_INSTANCE_UID, "no SOP Instance UID")
    return PreparedInstance(
        part10=part10,
        sop_instance_uid=sop_instance,
        study_instance_uid=str(uids[STUDY_INSTANCE] or "").strip(),
        dataset_offset=dataset_offset,
        wrapped=wrapped,
    )


def dataset_offset(part10: bytes) -> int:
    """Where the data set starts in a Part 10 file (after preamble, prefix and file meta)."""
    try:
        return walk_file_meta(part10)
    except (Truncated, Malformed) as error:
        raise NotImportable(Refusal.NOT_DICOM, f"not a Part 10 file: {error}") from None


# -- the element structure ----------------------------------------------------------


def walk_file_meta(part10: bytes, found: dict[int, str] | None = None) -> int:
    """Walk group 0002 (always explicit VR little endian); return where the data set starts."""
    offset = 132
    while offset + 8 <= len(part10) and part10[offset : offset + 2] == b"\x02\x00":
        start = offset
        offset = walk_element(part10, offset, len(part10), implicit=False, little=True)
        keep_value(part10, start, offset, found)
    if offset == 132:
        if offset + 8 > len(part10):
            raise Truncated("the file ends before its file meta information")
        raise Malformed("no file meta information after the DICM prefix")
    return offset


def check_complete(
    data: bytes, offset: int, *, implicit: bool, little: bool, found: dict[int, str]
) -> None:
    try:
        walk_elements(data, offset, len(data), implicit=implicit, little=little, found=found)
    except Truncated as error:
        raise NotImportable(Refusal.TRUNCATED, f"truncated: {error}") from None
    except Malformed as error:
        raise NotImportable(Refusal.NOT_DICOM, f"not a readable DICOM file: {error}") from None


def walk_elements(
    data: bytes,
    offset: int,
    end: int,
    *,
    implicit: bool,
    little: bool,
    in_item: bool = False,
    raw: bool = False,
    found: dict[int, str] | None = None,
) -> int:
    """Check every element up to `end` (or an item's end) fits; return the offset after them.

    `raw`: a data set without file meta, whose encoding was guessed; compressed pixel
    data there cannot be wrapped, since the transfer syntax is unknown. `found`: the
    values of these top-level (UI) tags are stored into it.
    """
    order = "<" if little else ">"
    last_tag, count = -1, 0
    while offset < end:
        if offset + 8 > end:
            raise Truncated(f"the file ends inside an element header at byte {offset}")
        group, element = struct.unpack_from(order + "HH", data, offset)
        tag = group << 16 | element
        if tag in (ITEM_END, SEQUENCE_END):
            if not in_item:
                raise Malformed(f"a delimiter outside a sequence at byte {offset}")
            return offset + 8
        if raw and tag <= last_tag:
            raise Malformed(f"element ({group:04X},{element:04X}) out of order at byte {offset}")
        last_tag = tag
        if raw and tag == PIXEL_DATA and is_undefined(data, offset, implicit=implicit):
            raise NotImportable(
                Refusal.NOT_DICOM,
                "a data set with compressed pixel data but no file meta: "
                "its transfer syntax is unknown",
            )
        try:
            start, offset = (
                offset,
                walk_element(data, offset, end, implicit=implicit, little=little),
            )
        except Truncated:
            if raw and count < RAW_ELEMENTS_BEFORE_TRUNCATED:
                raise Malformed("it does not hold DICOM data elements") from None
            raise
        keep_value(data, start, offset, found, little=little)
        count += 1
    if in_item:
        raise Truncated("the file ends inside a sequence item")
    return offset


def keep_value(
    data: bytes, start: int, end: int, found: dict[int, str] | None, *, little: bool = True
) -> None:
    """Store a short-VR element's value (header of 8 bytes) if its tag is one `found` wants."""
    if not found:
        return
    group, element = struct.unpack_from("<HH" if little else ">HH", data, start)
    tag = group << 16 | element
    if tag in found and end - start <= 8 + 64:
        found[tag] = data[start + 8 : end].rstrip(b"\x00 ").decode("ascii", "replace")


def is_undefined(data: bytes, offset: int, *, implicit: bool) -> bool:
    position = offset + 4 if implicit else offset + 8
    return data[position : position + 4] == b"\xff\xff\xff\xff"


def walk_element(data: bytes, offset: int, end: int, *, implicit: bool, little: bool) -> int:
    order = "<" if little else ">"
    group, element = struct.unpack_from(order + "HH", data, offset)
    if implicit:
        (length,) = struct.unpack_from(order + "I", data, offset + 4)
        offset += 8
    else:
        vr = data[offset + 4 : offset + 6]
        if vr not in KNOWN_VRS:
            raise Malformed(f"unknown VR {vr!r} at byte {offset + 4}")
        if vr in LONG_VRS:
            if offset + 12 > end:
                raise Truncated(f"the file ends inside an element header at byte {offset}")
            (length,) = struct.unpack_from(order + "I", data, offset + 8)
            offset += 12
        else:
            (length,) = struct.unpack_from(order + "H", data, offset + 6)
            offset += 8
    if length == UNDEFINED_LENGTH:
        return walk_items(data, offset, end, implicit=implicit, little=little)
    if offset + length > end:
        raise Truncated(
            f"element ({group:04X},{element:04X}) declares {length} bytes, {end - offset} remain"
        )
    return offset + length


def walk_items(data: bytes, offset: int, end: int, *, implicit: bool, little: bool) -> int:
    """Items of an undefined-length sequence (or pixel data fragments) up to its delimiter."""
    order = "<" if little else ">"
    while True:
        if offset + 8 > end:
            raise Truncated("the file ends inside a sequence")
        group, element, length = struct.unpack_from(order + "HHI", data, offset)
        tag = group << 16 | element
        offset += 8
        if tag == SEQUENCE_END:
            return offset
        if tag != ITEM:
            raise Malformed(f"({group:04X},{element:04X}) where a sequence item should be")
        if length == UNDEFINED_LENGTH:
            offset = walk_elements(
                data, offset, end, implicit=implicit, little=little, in_item=True
            )
        elif offset + length > end:
            raise Truncated(f"a sequence item declares {length} bytes, {end - offset} remain")
        else:
            offset += length


# -- trees of files: folders, ZIP archives, DICOMDIR media ---------------------------


def read_dicomdir_references(data: bytes) -> list[str]:
    """The files a DICOMDIR references, as paths relative to its folder ("A/B/C")."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, ValueError, EOFError, struct.error) as error:
        raise NotImportable(Refusal.NOT_DICOM, f"unreadable DICOMDIR: {error}") from None
    references = []
    for record in ds.get("DirectoryRecordSequence", []):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        references.append("/".join(str(part).strip() for part in parts))
    return references


def is_dicomdir_name(name: str) -> bool:
    return posixpath.basename(name).upper() == "DICOMDIR"


def ignored_reason(name: str) -> str | None:
    """Clutter that archives and media carry beside the images (never an instance)."""
    parts = name.split("/")
    if any(part in IGNORED_FOLDERS for part in parts[:-1]):
        return "macOS resource data in the archive"
    base = parts[-1]
    if base.startswith(".") or base.lower() in IGNORED_NAMES:
        return "hidden or system file"
    if len(parts) == 1 and base in EXPORT_MANIFEST_NAMES:
        return "the manifest of an export of this platform"
    return None


@dataclass(frozen=True)
class TreePlan:
    """What to do with each file of a tree (relative posix names)."""

    send: list[str]
    ignored: list[tuple[str, str]]  # name, why
    missing: list[tuple[str, str]]  # name, why: a DICOMDIR references it, the tree lacks it


def plan_tree(names: Iterable[str], dicomdirs: Mapping[str, list[str]]) -> TreePlan:
    """Choose the files to send: below a DICOMDIR only the files it references.

    Media (CDs, USB sticks) carry viewers and documents beside the images; the DICOMDIR
    says which files are instances. Elsewhere every file is a candidate. References
    are matched case-insensitively (ISO 9660 media are upper case, mounts often not).
    """
    names = list(names)
    by_folded = {name.casefold(): name for name in names}
    referenced: dict[str, str] = {}  # folded name -> the DICOMDIR referencing it
    missing = []
    roots = sorted((posixpath.dirname(d) for d in dicomdirs), key=len, reverse=True)
    for dicomdir, references in dicomdirs.items():
        folder = posixpath.dirname(dicomdir)
        for reference in references:
            full = posixpath.join(folder, reference)
            if unsafe_path_reason(reference):
                missing.append((full, f"referenced by {dicomdir}: {unsafe_path_reason(reference)}"))
            elif full.casefold() not in by_folded:
                missing.append((full, f"referenced by {dicomdir} but missing"))
            else:
                referenced[full.casefold()] = dicomdir
    send, ignored = [], []
    for name in names:
        reason = ignored_reason(name)
        if is_dicomdir_name(name) and name in dicomdirs:
            ignored.append((name, "DICOMDIR: the media's index, its referenced files are imported"))
        elif reason:
            ignored.append((name, reason))
        elif name.casefold() in referenced or not under_any(name, roots):
            send.append(name)
        else:
            ignored.append((name, "not referenced by the DICOMDIR of its media"))
    return TreePlan(send=send, ignored=ignored, missing=missing)


def under_any(name: str, folders: list[str]) -> bool:
    return any(folder == "" or name.startswith(folder + "/") for folder in folders)


def unsafe_path_reason(name: str) -> str | None:
    """Why a relative name from an archive or an upload is unsafe to use, or None."""
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"unsafe path {name!r}: absolute or with backslashes"
    if ".." in name.split("/"):
        return f"unsafe path {name!r}: it climbs out of its folder (path traversal)"
    return None


def check_zip_archive(infos: list[zipfile.ZipInfo], archive_size: int) -> str | None:
    """Why the whole archive is refused (a ZIP bomb), or None."""
    if len(infos) > MAX_MEMBERS:
        return f"more than {MAX_MEMBERS} members"
    total = sum(info.file_size for info in infos)
    if total > MAX_ARCHIVE_BYTES:
        return f"expands to {total} bytes, more than the {MAX_ARCHIVE_BYTES} allowed"
    if total > RATIO_FLOOR and total > MAX_RATIO * max(archive_size, 1):
        return (
            f"expands {total // max(archive_size, 1)}-fold ({total} bytes from "
            f"{archive_size}): a ZIP bomb"
        )
    return None


def check_zip_member(info: zipfile.ZipInfo) -> str | None:
    """Why one member is refused (unsafe name, link, encryption, bomb), or None."""
    problem = unsafe_path_reason(info.filename)
    if problem:
        return problem
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"expands to {info.file_size} bytes, more than the {MAX_MEMBER_BYTES} allowed"
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return f"expands {info.file_size // max(info.compress_size, 1)}-fold: a ZIP bomb"
    return None


def is_zip(head: bytes) -> bool:
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")
