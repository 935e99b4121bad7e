"""The archive client against the real Orthanc started by the session fixture."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from storage.archive import (
    ArchiveClient,
    ArchiveNotFound,
    ArchiveRejected,
    ArchiveUnauthorized,
    ArchiveUnavailable,
)
from tests.support.services import find_free_port
from tests.support.studies import make_part10, uids_of


def test_system_reports_version_and_ports(archive: ArchiveClient, settings) -> None:
    system = archive.get_system()
    assert system["Version"].startswith("1.")
    assert system["DicomPort"] == settings.orthanc_dicom_port
    assert system["DicomAet"] == settings.orthanc_aet


def test_upload_then_find_by_uid(archive: ArchiveClient) -> None:
    part10 = make_part10()
    study_uid, _, sop_uid = uids_of(part10)
    result = archive.upload_instance(part10)
    assert result.status == "Success"
    assert archive.upload_instance(part10).status == "AlreadyStored"

    assert archive.find_study_ids(study_uid) == [result.study_id]
    [instance] = archive.find("Instance", {"SOPInstanceUID": sop_uid})
    assert instance["ID"] == result.instance_id
    tags = archive.get_instance_tags(result.instance_id)
    assert tags["StudyInstanceUID"] == study_uid
    assert archive.get_instance_file(result.instance_id) == part10


def test_find_with_wildcards_goes_through_json_body(archive: ArchiveClient) -> None:
    part10 = make_part10("MR_small.dcm")
    archive.upload_instance(part10)
    patient_name = str(pydicom.dcmread(BytesIO(part10)).PatientName)
    matches = archive.find(
        "Study", {"PatientName": patient_name[:3] + "*", "ModalitiesInStudy": "MR\\CT"}
    )
    assert matches, "wildcard and multi-value find must match through /tools/find"


def test_changes_feed_lists_new_instances_in_order(archive: ArchiveClient) -> None:
    before = archive.get_last_change()
    result = archive.upload_instance(make_part10())
    page = archive.get_changes(since=before, limit=100)
    assert page.last > before
    assert [c.seq for c in page.changes] == sorted(c.seq for c in page.changes)
    new_instances = [c for c in page.changes if c.change_type == "NewInstance"]
    assert result.instance_id in {c.resource_id for c in new_instances}


def test_stow_then_qido_wado_metadata_and_frame(archive: ArchiveClient) -> None:
    study_uid = generate_uid()
    files = [make_part10("CT_small.dcm", study_uid=study_uid) for _ in range(3)]
    response = archive.store_instances(files)
    stored = response["00081199"]["Value"]
    assert len(stored) == 3
    assert not response.get("00081198", {}).get("Value")  # no failed instance

    [study] = archive.search_studies(StudyInstanceUID=study_uid)
    assert study["0020000D"]["Value"] == [study_uid]

    _, series_uid, sop_uid = uids_of(files[0])
    metadata = archive.get_series_metadata(study_uid, series_uid)
    assert metadata[0]["00080018"]["Value"] == [sop_uid]
    instance = archive.get_instance_metadata(study_uid, series_uid, sop_uid)
    assert instance["00280010"]["Value"] == [128]

    original = pydicom.dcmread(BytesIO(files[0]))
    frame = archive.get_frame(study_uid, series_uid, sop_uid, 1)
    pixels = np.frombuffer(frame, dtype=original.pixel_array.dtype).reshape(original.Rows, -1)
    assert np.array_equal(pixels, original.pixel_array)


def test_missing_resource_is_not_found(archive: ArchiveClient) -> None:
    with pytest.raises(ArchiveNotFound):
        archive.get_study("0" * 8 + "-" + "0" * 8)


def test_non_dicom_upload_is_rejected_with_orthanc_message(archive: ArchiveClient) -> None:
    with pytest.raises(ArchiveRejected, match="HTTP 400"):
        archive.upload_instance(b"this is not a DICOM file")


def test_wrong_password_is_unauthorized(settings) -> None:
    client = ArchiveClient(settings.orthanc_url, settings.orthanc_user, "wrong")
    with client, pytest.raises(ArchiveUnauthorized, match="PACS_ORTHANC_PASSWORD"):
        client.get_system()


def test_closed_port_is_unavailable() -> None:
    client = ArchiveClient(f"http://127.0.0.1:{find_free_port()}", "u", "p", timeout=2)
    with client, pytest.raises(ArchiveUnavailable, match="pacs orthanc start"):
        client.get_system()
