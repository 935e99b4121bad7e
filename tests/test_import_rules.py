"""core.import_rules without an archive: classifying files, wrapping raw data sets, ZIP safety,
which files of a tree to import, and the summary."""

from __future__ import annotations

import io
import stat
import zipfile

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from core.import_rules import (
    MAX_MEMBER_BYTES,
    FileResult,
    ImportSummary,
    NotImportable,
    Outcome,
    Refusal,
    check_zip_archive,
    check_zip_member,
    ignored_reason,
    plan_tree,
    prepare_instance,
    read_dicomdir_references,
)
from tests.support.studies import clone_study


def part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def raw_dataset(ds: Dataset, *, implicit: bool) -> bytes:
    """The data set alone, as some exporters write it: no preamble, no file meta."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit
    write_dataset(buffer, ds)
    return buffer.getvalue()


@pytest.fixture
def instance() -> Dataset:
    ds = clone_study("CR", limit=1)[0]
    # An undefined-length sequence, to truncate inside it.
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    ds.AnatomicRegionSequence = Sequence([item])
    return ds


def refusal_of(data: bytes) -> NotImportable:
    with pytest.raises(NotImportable) as caught:
        prepare_instance(data)
    return caught.value


def test_a_part10_file_is_sent_as_it_is(instance: Dataset) -> None:
    data = part10(instance)
    prepared = prepare_instance(data)
    assert prepared.part10 == data
    assert not prepared.wrapped
    assert prepared.sop_instance_uid == instance.SOPInstanceUID
    assert prepared.study_instance_uid == instance.StudyInstanceUID


@pytest.mark.parametrize("implicit", [True, False])
def test_a_raw_data_set_is_wrapped_with_its_own_encoding_and_bytes_kept(
    instance: Dataset, implicit: bool
) -> None:
    raw = raw_dataset(instance, implicit=implicit)
    prepared = prepare_instance(raw)
    assert prepared.wrapped
    assert prepared.part10[128:132] == b"DICM"
    assert prepared.part10.endswith(raw)  # the data set's bytes are untouched
    assert prepared.part10[prepared.dataset_offset :] == raw
    read = pydicom.dcmread(io.BytesIO(prepared.part10))
    expected = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    assert read.file_meta.TransferSyntaxUID == expected
    assert read.file_meta.MediaStorageSOPInstanceUID == instance.SOPInstanceUID
    assert read.file_meta.MediaStorageSOPClassUID == instance.SOPClassUID
    assert read.PixelData == instance.PixelData
    assert read.AnatomicRegionSequence[0].CodeMeaning == "Chest"


def test_a_file_without_preamble_gets_one(instance: Dataset) -> None:
    stripped = part10(instance)[128:][4:]  # file meta + data set, no preamble, no "DICM"
    prepared = prepare_instance(stripped)
    assert prepared.wrapped
    assert prepared.part10 == bytes(128) + b"DICM" + stripped
    assert pydicom.dcmread(io.BytesIO(prepared.part10)).SOPInstanceUID == instance.SOPInstanceUID


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda data, pixels: data[: len(data) - 100], id="inside-pixel-data"),
        pytest.param(lambda data, pixels: data[: pixels + 4], id="inside-an-element-header"),
        pytest.param(lambda data, pixels: data[:130], id="inside-the-prefix"),
        pytest.param(lambda data, pixels: data[:200], id="inside-the-file-meta"),
    ],
)
def test_truncated_files_are_refused(instance: Dataset, cut) -> None:
    data = part10(instance)
    pixels = data.rindex(b"\xe0\x7f\x10\x00")
    refusal = refusal_of(cut(data, pixels))
    assert refusal.refusal == Refusal.TRUNCATED, refusal.reason
    assert refusal.reason.startswith("truncated")


def test_a_file_cut_inside_a_sequence_is_truncated(instance: Dataset) -> None:
    del instance.PixelData
    data = part10(instance)
    inside = data.index(b"Chest") + 2
    refusal = refusal_of(data[:inside])
    assert refusal.refusal == Refusal.TRUNCATED, refusal.reason
    raw = raw_dataset(instance, implicit=True)
    assert refusal_of(raw[: raw.index(b"Chest") + 2]).refusal == Refusal.TRUNCATED


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Patient list\nSmith, John\n",
        bytes(range(256)) * 40,
        b"\x08\x00garbage that only starts like a data set",
        b"%PDF-1.7\n" + bytes(500),
    ],
    ids=["empty", "text", "binary", "fake-start", "pdf"],
)
def test_what_is_not_dicom_is_refused(data: bytes) -> None:
    assert refusal_of(data).refusal == Refusal.NOT_DICOM


def test_no_sop_instance_uid_is_refused(instance: Dataset) -> None:
    del instance.SOPInstanceUID
    instance.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    refusal = refusal_of(part10(instance))
    assert refusal.refusal == Refusal.NO_SOP_INSTANCE_UID
    assert refusal_of(raw_dataset(instance, implicit=False)).refusal == (
        Refusal.NO_SOP_INSTANCE_UID
    )


def test_a_raw_data_set_with_compressed_pixels_cannot_be_wrapped() -> None:
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("JPEG2000.dcm"))
    refusal = refusal_of(raw_dataset(ds, implicit=False))
    assert refusal.refusal == Refusal.NOT_DICOM
    assert "transfer syntax is unknown" in refusal.reason


def test_a_dicomdir_is_not_an_instance_and_lists_its_files(tmp_path) -> None:
    from pydicom.fileset import FileSet

    file_set = FileSet()
    for ds in clone_study("CT", limit=2):
        file_set.add(ds)
    file_set.write(tmp_path)
    data = (tmp_path / "DICOMDIR").read_bytes()
    refusal = refusal_of(data)
    assert refusal.refusal is None  # ignored, not rejected
    references = read_dicomdir_references(data)
    assert len(references) == 2
    assert all((tmp_path / reference).is_file() for reference in references)


def zip_info(name: str, *, size: int = 1000, compressed: int = 900, mode: int = 0o644):
    info = zipfile.ZipInfo(name)
    info.file_size, info.compress_size = size, compressed
    info.external_attr = (stat.S_IFREG | mode) << 16
    return info


@pytest.mark.parametrize(
    "name",
    ["../evil.dcm", "a/../../evil.dcm", "/etc/passwd", "C:/Windows/x.dcm", "a\\..\\x.dcm"],
)
def test_zip_members_with_unsafe_paths_are_refused(name: str) -> None:
    assert "unsafe path" in check_zip_member(zip_info(name))


def test_zip_links_encryption_and_bombs_are_refused() -> None:
    link = zip_info("link.dcm")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    assert check_zip_member(link) == "a symbolic link"
    encrypted = zip_info("secret.dcm")
    encrypted.flag_bits |= 0x1
    assert check_zip_member(encrypted) == "encrypted"
    bomb = zip_info("bomb.dcm", size=1024**3, compressed=1024**2)
    assert "ZIP bomb" in check_zip_member(bomb)
    huge = zip_info("huge.dcm", size=MAX_MEMBER_BYTES + 1, compressed=MAX_MEMBER_BYTES)
    assert "more than" in check_zip_member(huge)
    # A blank image compresses well: small members are not judged by their ratio.
    assert check_zip_member(zip_info("blank.dcm", size=512 * 1024, compressed=600)) is None
    assert check_zip_member(zip_info("PT0/ST0/SE0/IM0")) is None


def test_a_zip_of_many_small_members_expanding_too_far_is_a_bomb() -> None:
    members = [zip_info(f"{n}.dcm", size=10 * 1024**2, compressed=10_000) for n in range(100)]
    assert "ZIP bomb" in check_zip_archive(members, archive_size=1_000_000)
    assert check_zip_archive(members[:1], archive_size=1_000_000) is None


def test_below_a_dicomdir_only_its_referenced_files_are_imported() -> None:
    names = [
        "cd/DICOMDIR",
        "cd/PT000000/ST000000/SE000000/IM000000",
        "cd/pt000000/st000000/se000000/im000001",  # mounted lower case
        "cd/viewer/viewer.exe",
        "cd/README.TXT",
        "loose/a.dcm",
        "loose/.DS_Store",
        "__MACOSX/loose/._a.dcm",
    ]
    references = [
        "PT000000/ST000000/SE000000/IM000000",
        "PT000000/ST000000/SE000000/IM000001",
        "PT000000/ST000000/SE000000/IM000002",
    ]
    plan = plan_tree(names, {"cd/DICOMDIR": references})
    assert plan.send == [
        "cd/PT000000/ST000000/SE000000/IM000000",
        "cd/pt000000/st000000/se000000/im000001",
        "loose/a.dcm",
    ]
    ignored = dict(plan.ignored)
    assert set(ignored) == {
        "cd/DICOMDIR",
        "cd/viewer/viewer.exe",
        "cd/README.TXT",
        "loose/.DS_Store",
        "__MACOSX/loose/._a.dcm",
    }
    assert "not referenced" in ignored["cd/viewer/viewer.exe"]
    assert plan.missing == [
        ("cd/PT000000/ST000000/SE000000/IM000002", "referenced by cd/DICOMDIR but missing")
    ]


def test_a_dicomdir_reference_cannot_climb_out_of_its_media() -> None:
    plan = plan_tree(["cd/DICOMDIR", "secret.dcm"], {"cd/DICOMDIR": ["../secret.dcm"]})
    [(name, why)] = plan.missing
    assert name == "cd/../secret.dcm"
    assert "path traversal" in why
    assert plan.send == ["secret.dcm"]  # imported as a loose file, not through the DICOMDIR


def test_the_summary_counts_lists_studies_and_serialises() -> None:
    summary = ImportSummary(
        files=[
            FileResult("a", Outcome.STORED, 10, study_instance_uid="1.2"),
            FileResult("b", Outcome.ALREADY_STORED, 20, study_instance_uid="1.3"),
            FileResult("c", Outcome.STORED, 30, study_instance_uid="1.2"),
            FileResult("d", Outcome.REJECTED, 5, Refusal.NOT_DICOM, "not DICOM"),
            FileResult("e", Outcome.IGNORED, 0, reason="hidden or system file"),
        ],
        elapsed=1.5,
    )
    assert summary.counts == {"stored": 2, "already_stored": 1, "rejected": 1, "ignored": 1}
    assert summary.study_uids == ["1.2", "1.3"]
    assert summary.stored_bytes == 40
    assert [r.name for r in summary.rejected] == ["d"]
    as_json = summary.to_json()
    assert as_json["files"][3] == {
        "name": "d",
        "outcome": "rejected",
        "size": 5,
        "refusal": "not_dicom",
        "reason": "not DICOM",
        "sop_instance_uid": "",
        "study_instance_uid": "",
    }
    assert summary.describe() == "2 stored, 1 already in the archive, 1 rejected, 1 ignored"


@pytest.mark.parametrize(
    "name", ["manifest.csv", "deidentification-report.json", "teaching-manifest.json"]
)
def test_the_manifests_of_our_own_exports_are_ignored_at_the_top_of_a_zip(name: str) -> None:
    assert ignored_reason(name) == "the manifest of an export of this platform"
    assert ignored_reason(f"case-1/{name}") is None  # deeper, it is a file like any other
    assert ignored_reason(name.upper()) is None
