"""Fresh copies of demo studies (new UIDs) for tests that need studies of their own."""

from __future__ import annotations

import copy
import datetime
import functools
import os
import subprocess
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from config.settings import Settings
from demo.studies import DemoStudy, build_demo_studies
from pacs.modality_commands import register_local_callers

# The calling AE titles of the tests' DICOM clients (dcmtk's defaults, send_datasets'):
# the archive accepts registered modalities only, so fixtures register these on 127.0.0.1.
TEST_CALLING_AETS = ("STORESCU", "ECHOSCU", "FINDSCU", "MOVESCU", "PACS")


def register_test_callers(settings: Settings) -> None:
    """Register the tests' DICOM clients before (or while) the archive runs."""
    register_local_callers(settings, TEST_CALLING_AETS, "test client")


@functools.cache
def demo_studies() -> tuple[DemoStudy, ...]:
    return tuple(build_demo_studies(datetime.date.today()))


def demo_study(modality: str, index: int = 0) -> DemoStudy:
    return [study for study in demo_studies() if study.modality == modality][index]


def clone_study(modality: str = "CR", *, limit: int | None = None, **attributes) -> list[Dataset]:
    """A demo study's instances with new Study/Series/SOP UIDs and `attributes` set."""
    study_uid = generate_uid()
    series_uids: dict[str, str] = {}
    clones = []
    for original in demo_study(modality).datasets[:limit]:
        ds = copy.deepcopy(original)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uids.setdefault(original.SeriesInstanceUID, generate_uid())
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for keyword, value in attributes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        clones.append(ds)
    return clones


def write_files(datasets: list[Dataset], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(datasets):
        path = folder / f"{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def run_storescu(settings: Settings, paths: list[Path], *, nodelay: bool = True) -> None:
    """Send files (or folders, recursively) with dcmtk's storescu, as a modality would."""
    env = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
    if nodelay:
        env["TCP_NODELAY"] = "1"
    subprocess.run(
        [
            "storescu",
            "-aet",
            "STORESCU",
            "-aec",
            settings.orthanc_aet,
            "+sd",
            "127.0.0.1",
            str(settings.orthanc_dicom_port),
            *map(str, paths),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )


def make_part10(source: str = "CT_small.dcm", *, study_uid: str | None = None) -> bytes:
    """A vendor test file from pydicom with fresh UIDs, as Part 10 bytes."""
    ds = pydicom.dcmread(get_testdata_file(source))
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def uids_of(part10: bytes) -> tuple[str, str, str]:
    ds = pydicom.dcmread(BytesIO(part10), stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
