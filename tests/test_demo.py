"""The demo studies are valid Part 10 DICOM, realistic enough to demo, and stable across calls."""

from __future__ import annotations

import datetime
import re
import subprocess
import warnings
from collections import Counter
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from demo.studies import DemoStudy, build_demo_studies

TODAY = datetime.date(2026, 3, 1)
UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
DEMO_SOP_CLASSES = {
    CTImageStorage,
    MRImageStorage,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
}


@pytest.fixture(scope="module")
def studies() -> list[DemoStudy]:
    return build_demo_studies(TODAY)


@pytest.fixture(scope="module")
def datasets(studies: list[DemoStudy]) -> list[Dataset]:
    return [ds for study in studies for ds in study.datasets]


def write_part10(ds: Dataset) -> bytes:
    """Encode as a Part 10 file; any pydicom warning about a value fails the test."""
    buffer = BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def is_valid_uid(uid: str) -> bool:
    return len(uid) <= 64 and UID_PATTERN.match(uid) is not None


def collect_uids(studies: list[DemoStudy]) -> list[tuple[str, str, str, str]]:
    return [
        (
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
            ds.get("FrameOfReferenceUID", ""),
        )
        for study in studies
        for ds in study.datasets
    ]


def test_a_dozen_studies_of_several_patients_with_a_quick_number_of_instances(
    studies: list[DemoStudy], datasets: list[Dataset]
) -> None:
    assert 10 <= len(studies) <= 14
    assert 8 <= len({study.patient_id for study in studies}) <= 10
    assert 200 <= len(datasets) <= 400
    assert all(study.datasets for study in studies)


def test_every_instance_round_trips_as_a_part10_file(datasets: list[Dataset]) -> None:
    for ds in datasets:
        assert ds.preamble == bytes(128)
        encoded = write_part10(ds)
        assert encoded[:128] == bytes(128) and encoded[128:132] == b"DICM"
        read = pydicom.dcmread(BytesIO(encoded))
        meta = read.file_meta
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert is_valid_uid(meta.ImplementationClassUID)
        assert read.SOPInstanceUID == ds.SOPInstanceUID
        assert read.PixelData == ds.PixelData


def test_uids_are_valid_and_unique_per_level(studies: list[DemoStudy]) -> None:
    uids = collect_uids(studies)
    assert all(is_valid_uid(uid) for row in uids for uid in row if uid)
    instance_uids = [sop for _, _, sop, _ in uids]
    assert len(set(instance_uids)) == len(instance_uids)
    assert len({study.study_instance_uid for study in studies}) == len(studies)
    series_to_study = {series: study for study, series, _, _ in uids}
    assert len(series_to_study) == len({(study, series) for study, series, _, _ in uids})
    assert not set(instance_uids) & set(series_to_study)
    assert not set(series_to_study) & {study.study_instance_uid for study in studies}


def test_uids_do_not_depend_on_the_day_but_dates_do(studies: list[DemoStudy]) -> None:
    later = build_demo_studies(TODAY + datetime.timedelta(days=40))
    assert collect_uids(later) == collect_uids(studies)
    assert [s.accession_number for s in later] == [s.accession_number for s in studies]
    shifted = [
        datetime.datetime.strptime(b.datasets[0].StudyDate, "%Y%m%d")
        - datetime.datetime.strptime(a.datasets[0].StudyDate, "%Y%m%d")
        for a, b in zip(studies, later, strict=True)
    ]
    assert set(shifted) == {datetime.timedelta(days=40)}


def test_study_summary_matches_every_instance(studies: list[DemoStudy]) -> None:
    for study in studies:
        for ds in study.datasets:
            assert ds.StudyInstanceUID == study.study_instance_uid
            assert ds.PatientID == study.patient_id
            assert str(ds.PatientName) == study.patient_name
            assert ds.Modality == study.modality
            assert ds.AccessionNumber == study.accession_number
            assert ds.StudyDescription == study.description
    accessions = [study.accession_number for study in studies]
    assert len(set(accessions)) == len(accessions)
    assert all(re.fullmatch(r"ACC\d{9}", accession) for accession in accessions)


def test_all_modalities_and_sop_classes_are_present(
    studies: list[DemoStudy], datasets: list[Dataset]
) -> None:
    assert {study.modality for study in studies} == {"CT", "MR", "CR", "DX", "US"}
    assert {ds.SOPClassUID for ds in datasets} == DEMO_SOP_CLASSES


def test_ultrasound_has_a_multiframe_cine(datasets: list[Dataset]) -> None:
    cines = [ds for ds in datasets if ds.SOPClassUID == UltrasoundMultiFrameImageStorage]
    assert cines
    for cine in cines:
        assert cine.NumberOfFrames > 1
        assert cine.FrameTime > 0
        assert cine.FrameIncrementPointer == Tag("FrameTime")
        frames = cine.pixel_array
        assert not np.array_equal(frames[0], frames[-1])


def test_chest_radiographs_have_two_views(studies: list[DemoStudy]) -> None:
    chests = [study for study in studies if study.modality == "CR"]
    assert chests
    for study in chests:
        assert all(ds.SOPClassUID == ComputedRadiographyImageStorage for ds in study.datasets)
        assert sorted(ds.ViewPosition for ds in study.datasets) == ["LL", "PA"]


def test_cross_sectional_series_have_slices_and_geometry(datasets: list[Dataset]) -> None:
    axial = Counter(
        ds.SeriesInstanceUID
        for ds in datasets
        if ds.Modality in ("CT", "MR") and "LOCALIZER" not in ds.ImageType
    )
    assert min(axial.values()) >= 20
    for ds in datasets:
        if ds.Modality in ("CT", "MR"):
            assert len(ds.ImagePositionPatient) == 3 and len(ds.ImageOrientationPatient) == 6
            assert ds.FrameOfReferenceUID and ds.PixelSpacing[0] > 0


def test_names_are_utf8_and_survive_a_round_trip(studies: list[DemoStudy]) -> None:
    names = [study.patient_name for study in studies]
    assert sum(not name.isascii() for name in names) >= 4
    assert all("^" in name for name in names)
    for study in studies:
        ds = study.datasets[0]
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        encoded = write_part10(ds)
        family = study.patient_name.split("^")[0]
        assert family.encode("utf-8") in encoded
        assert str(pydicom.dcmread(BytesIO(encoded)).PatientName) == study.patient_name
    japanese = next(s for s in studies if "山田" in s.patient_name).datasets[0]
    assert pydicom.dcmread(BytesIO(write_part10(japanese))).PatientName.ideographic == "山田^太郎"


def test_headers_carry_what_a_worklist_needs(
    studies: list[DemoStudy], datasets: list[Dataset]
) -> None:
    for ds in datasets:
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert re.fullmatch(r"DEMO\d{4}", ds.PatientID)
        assert ds.PatientSex in ("M", "F", "O") and len(ds.PatientBirthDate) == 8
        assert re.fullmatch(r"\d{3}Y", ds.PatientAge)
        assert ds.ReferringPhysicianName and ds.InstitutionName and ds.Manufacturer
        assert ds.SeriesDescription and ds.BodyPartExamined and ds.StudyID
        assert ds.RequestedProcedurePriority in ("STAT", "HIGH", "ROUTINE")
    priorities = Counter(study.datasets[0].RequestedProcedurePriority for study in studies)
    assert 1 <= priorities["STAT"] <= 2 and priorities["ROUTINE"] > len(studies) / 2
    assert len({ds.ReferringPhysicianName for ds in datasets}) >= 3
    ordered = [s for s in studies if "IssueDateOfImagingServiceRequest" in s.datasets[0]]
    assert len(ordered) > len(studies) / 2


def parse_datetime(day: str, time: str) -> datetime.datetime:
    return datetime.datetime.strptime(day + time[:6], "%Y%m%d%H%M%S")


def test_dates_fall_in_the_eight_weeks_before_today_and_in_order(
    studies: list[DemoStudy],
) -> None:
    starts = []
    for study in studies:
        for ds in study.datasets:
            started = parse_datetime(ds.StudyDate, ds.StudyTime)
            assert TODAY - datetime.timedelta(days=56) <= started.date() < TODAY
            assert started <= parse_datetime(ds.SeriesDate, ds.SeriesTime)
            assert started <= parse_datetime(ds.ContentDate, ds.ContentTime)
            assert started <= parse_datetime(ds.AcquisitionDate, ds.AcquisitionTime)
            if "IssueDateOfImagingServiceRequest" in ds:
                ordered = parse_datetime(
                    ds.IssueDateOfImagingServiceRequest, ds.IssueTimeOfImagingServiceRequest
                )
                assert datetime.timedelta(0) < started - ordered <= datetime.timedelta(days=2)
        starts.append(parse_datetime(study.datasets[0].StudyDate, study.datasets[0].StudyTime))
    assert (max(starts) - min(starts)).days >= 35
    assert any(start.hour < 7 or start.hour >= 20 for start in starts)
    assert sum(8 <= start.hour < 18 for start in starts) > len(starts) / 2


def test_pixel_data_matches_the_header_and_shows_something(datasets: list[Dataset]) -> None:
    for ds in datasets:
        pixels = ds.pixel_array
        frames = ds.get("NumberOfFrames", 1)
        expected = (ds.Rows, ds.Columns) if frames == 1 else (frames, ds.Rows, ds.Columns)
        assert pixels.shape == expected
        assert ds.SamplesPerPixel == 1 and ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.HighBit == ds.BitsStored - 1 and int(pixels.max()) < 2**ds.BitsStored
        assert len(np.unique(pixels[..., ::4, ::4])) > 20, ds.SeriesDescription
        if ds.Modality in ("CT", "MR", "CR", "DX"):
            assert ds.WindowWidth > 0


@pytest.mark.requires("dciodvfy")
def test_dciodvfy_finds_no_errors_in_any_sop_class(datasets: list[Dataset], tmp_path: Path) -> None:
    """One instance per SOP class and image type (so CT localizers are checked too)."""
    samples = {(ds.SOPClassUID, tuple(ds.ImageType)): ds for ds in datasets}
    assert {sop_class for sop_class, _ in samples} == DEMO_SOP_CLASSES
    failures = {}
    for number, ((sop_class, image_type), ds) in enumerate(samples.items()):
        path = tmp_path / f"{number}.dcm"
        path.write_bytes(write_part10(ds))
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if "Error" in line]
        if errors:
            failures[f"{sop_class.name} {image_type}"] = errors
    assert not failures
