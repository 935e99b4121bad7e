"""Trauma- and oncology-sized CT studies (thousands of instances) for the tests and
benchmarks of big studies.

Each instance is one of the demo CT's slices with its own UIDs and numbers. pydicom takes
~20 ms to copy and write one dataset, a minute for 3,000 on a busy machine, so each slice is
written once, with placeholders of fixed length, and an instance is that file with its
values patched in: 3,000 files in about a second, one at a time in memory.
"""

from __future__ import annotations

import copy
import functools
import itertools
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from storage.archive import ArchiveClient
from tests.support.reports import part10_of
from tests.support.studies import demo_study

PER_SERIES = 300  # slices per series: 3,000 instances are 10 series, as in a trauma CT

# Placeholders: 64-character UIDs (the longest allowed, so any UID of ours fits the same
# length: `make_uid`), and 6-character integer strings.
STUDY, SERIES, SOP = ("1.2.3." + digit * 58 for digit in "789")
NUMBER_WIDTH = 6
SERIES_NUMBER, INSTANCE_NUMBER = "9" * NUMBER_WIDTH, "8" * NUMBER_WIDTH


def make_uid() -> str:
    """A 64-character UID under 2.25 (a UUID's digits, zero-padded after a leading 1)."""
    return f"2.25.1{uuid.uuid4().int:058d}"


def encode_element(group: int, element: int, vr: bytes, value: str) -> bytes:
    """One element in explicit VR little endian (the demo files' transfer syntax)."""
    raw = value.encode("ascii")
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(raw)) + raw


# Where the values go: (group, element, VR, placeholder).
PLACES = (
    (0x0002, 0x0003, b"UI", SOP),  # Media Storage SOP Instance UID
    (0x0008, 0x0018, b"UI", SOP),
    (0x0020, 0x000D, b"UI", STUDY),
    (0x0020, 0x000E, b"UI", SERIES),
    (0x0020, 0x0011, b"IS", SERIES_NUMBER),
    (0x0020, 0x0013, b"IS", INSTANCE_NUMBER),
)


def patch(template: bytes, values: tuple[str, ...]) -> bytes:
    """The template with each placeholder element replaced by one of the same length."""
    for (group, element, vr, placeholder), value in zip(PLACES, values, strict=True):
        old = encode_element(group, element, vr, placeholder)
        template = template.replace(old, encode_element(group, element, vr, value), 1)
    return template


@functools.cache
def make_templates(pixel_step: int, priority: str) -> tuple[bytes, ...]:
    """Each demo CT slice as a Part 10 file with placeholder UIDs and numbers, its pixels
    thinned out to every `pixel_step`-th row and column (small files where they do not matter),
    and the Requested Procedure Priority given."""
    templates = []
    for original in demo_study("CT").datasets:
        ds = copy.deepcopy(original)
        if pixel_step > 1:
            pixels = ds.pixel_array[::pixel_step, ::pixel_step].copy()
            ds.Rows, ds.Columns = pixels.shape
            ds.PixelData = pixels.tobytes()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = STUDY, SERIES, SOP
        ds.file_meta.MediaStorageSOPInstanceUID = SOP
        ds.SeriesNumber, ds.InstanceNumber = SERIES_NUMBER, INSTANCE_NUMBER
        ds.SeriesDescription = "Axial"
        ds.RequestedProcedurePriority = priority
        templates.append(part10_of(ds))
    return tuple(templates)


@dataclass
class BigStudy:
    """A CT study of `instances` slices in series of `per_series`; its UIDs are fixed on
    creation and its files made on demand, so a series can also be added later (late)."""

    instances: int
    per_series: int = PER_SERIES
    pixel_step: int = 1
    priority: str = "ROUTINE"
    study_instance_uid: str = field(default_factory=make_uid)
    series_uids: list[str] = field(default_factory=list)
    sop_uids: list[str] = field(default_factory=list)  # of the instances made so far

    def __post_init__(self) -> None:
        self.series_uids = [make_uid() for _ in range(-(-self.instances // self.per_series))]

    def part10s(self, series: range | None = None) -> Iterator[bytes]:
        """The instances (of the given series indexes) as Part 10 files, one after another."""
        templates = make_templates(self.pixel_step, self.priority)
        for index in series if series is not None else range(len(self.series_uids)):
            first = index * self.per_series
            for number in range(first, min(first + self.per_series, self.instances)):
                sop = make_uid()
                self.sop_uids.append(sop)
                values = (
                    sop,
                    sop,
                    self.study_instance_uid,
                    self.series_uids[index],
                    f"{index + 1:0{NUMBER_WIDTH}d}",
                    f"{number - first + 1:0{NUMBER_WIDTH}d}",
                )
                yield patch(templates[number % len(templates)], values)

    def add_series(self, instances: int) -> range:
        """A late series of `instances` slices; its index range, for `part10s(series=...)`."""
        first = len(self.series_uids)
        self.series_uids.append(make_uid())
        self.instances = first * self.per_series + instances
        return range(first, first + 1)

    def store(self, archive: ArchiveClient, series: range | None = None, batch: int = 100) -> None:
        """STOW the instances (of the given series) in batches of `batch`."""
        files = self.part10s(series)
        while chunk := list(itertools.islice(files, batch)):
            answer = archive.store_instances(chunk)
            if answer.get("00081198", {}).get("Value"):
                raise RuntimeError(f"the archive refused instances: {answer}")

    def write(self, folder: Path, series: range | None = None) -> Path:
        """The instances as files in `folder` (for storescu)."""
        folder.mkdir(parents=True, exist_ok=True)
        for number, part10 in enumerate(self.part10s(series)):
            (folder / f"{number:05d}.dcm").write_bytes(part10)
        return folder
