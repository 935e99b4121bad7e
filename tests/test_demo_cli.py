"""`pacs demo` fills the real archive once; dcmtk, an outside client, reaches it too."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

import pytest

from config.settings import Settings
from demo.studies import build_demo_studies
from storage.archive import ArchiveClient
from tests.support.services import run_pacs

pytestmark = pytest.mark.slow  # the pacs command against an Orthanc of its own


def test_demo_loads_every_study_once(orthanc_env: dict[str, str], archive: ArchiveClient) -> None:
    studies = build_demo_studies(datetime.date.today())
    first = run_pacs(orthanc_env, "demo", timeout=600)
    assert first.returncode == 0, first.stderr
    for study in studies:
        [study_id] = archive.find_study_ids(study.study_instance_uid)
        stored = archive.get_json(f"/studies/{study_id}/statistics")["CountInstances"]
        assert stored == len(study.datasets)
    status = run_pacs(orthanc_env, "orthanc", "status").stdout
    before = archive.get_statistics()["CountInstances"]

    again = run_pacs(orthanc_env, "demo", timeout=600)
    assert again.returncode == 0, again.stderr
    assert "already in the archive" in again.stdout
    assert archive.get_statistics()["CountInstances"] == before
    assert f"instances {before}," in status
    # It sent as a registered modality: its calling AE on 127.0.0.1, in the archive too.
    assert "PACS-DEMO\t127.0.0.1\t" in run_pacs(orthanc_env, "modality", "list").stdout
    assert "PACS-DEMO" in archive.get_json("/modalities")


def test_demo_names_survive_in_utf8(orthanc_env: dict[str, str], archive: ArchiveClient) -> None:
    assert run_pacs(orthanc_env, "demo", timeout=600).returncode == 0
    names = {
        study["PatientMainDicomTags"]["PatientName"]
        for study in archive.find("Study", {"PatientID": "DEMO*"})
    }
    assert "Müller^Jürgen" in names
    assert any("山田" in name for name in names)


def test_dcmtk_echo_and_store_reach_the_archive(
    settings: Settings, archive: ArchiveClient, tmp_path: Path
) -> None:
    study = build_demo_studies(datetime.date.today())[-1]
    dataset = study.datasets[0].copy()
    dataset.StudyInstanceUID = "1.2.826.0.1.3680043.10.1234.1"  # a study of its own
    dataset.SOPInstanceUID = "1.2.826.0.1.3680043.10.1234.1.1.1"
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    path = tmp_path / "one.dcm"
    dataset.save_as(path, enforce_file_format=True)
    env = {**os.environ, "TCP_NODELAY": "1"}
    address = ["127.0.0.1", str(settings.orthanc_dicom_port)]

    echo = subprocess.run(
        ["echoscu", "-aec", settings.orthanc_aet, *address],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert echo.returncode == 0, echo.stderr
    store = subprocess.run(
        ["storescu", "-aec", settings.orthanc_aet, *address, str(path)],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert store.returncode == 0, store.stderr

    [study_id] = archive.find_study_ids(dataset.StudyInstanceUID)
    [instance] = archive.get_study_instances(study_id)
    assert instance["MainDicomTags"]["SOPInstanceUID"] == dataset.SOPInstanceUID
