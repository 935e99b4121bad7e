"""Ingestion end to end: real Orthanc, its plugin's notification, the portal, the flows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from config.settings import Settings, load_settings
from core.increments import GLIMPSE_ABOVE
from flows.reconcile_archive import reconcile_archive
from pacs.orthanc_server import start_orthanc, stop_orthanc
from pacs.pipeline import EmbeddedPipeline
from portal import create_app
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.dicom_sender import send_datasets
from storage.models.evidence import EvidenceItem
from storage.models.studies import Study, StudyEvent
from tests.support.big_studies import BigStudy
from tests.support.databases import new_database
from tests.support.pipeline import (
    find_quarantined,
    find_study,
    is_arriving,
    upload,
    wait_for_study,
)
from tests.support.services import make_env
from tests.support.studies import clone_study, register_test_callers, run_storescu, write_files


def test_storescu_study_reaches_the_worklist_through_the_notification(
    pipeline_settings: Settings, portal: EmbeddedPipeline, tmp_path: Path
) -> None:
    datasets = clone_study("CT", limit=12)
    files = write_files(datasets, tmp_path / "ct")
    run_storescu(pipeline_settings, files)
    study = wait_for_study(pipeline_settings, datasets[0].StudyInstanceUID)
    assert study.status == "received"
    assert study.instance_count == 12
    assert study.patient_id == datasets[0].PatientID
    assert study.accession_number == datasets[0].AccessionNumber
    assert study.modality == "CT"
    assert study.received_at is not None and study.ingested_at >= study.received_at


def test_pynetdicom_study_reaches_the_worklist(
    pipeline_settings: Settings, portal: EmbeddedPipeline
) -> None:
    datasets = clone_study("US")
    summary = send_datasets(
        datasets,
        host="127.0.0.1",
        port=pipeline_settings.orthanc_dicom_port,
        called_aet=pipeline_settings.orthanc_aet,
    )
    assert summary.sent == len(datasets)
    study = wait_for_study(pipeline_settings, datasets[0].StudyInstanceUID)
    assert study.modality == "US"
    assert study.patient_name == str(datasets[0].PatientName)
    assert study.series_count == len({ds.SeriesInstanceUID for ds in datasets})


def test_broken_studies_land_in_quarantine_with_every_reason(
    pipeline_settings: Settings,
) -> None:
    no_pixels = clone_study("CR", limit=1, PixelData=None)
    future = clone_study("CR", limit=1, StudyDate="20991231")
    odd_modality = clone_study("CR", limit=1, Modality="ZZ", AccessionNumber=None)
    upload(pipeline_settings, no_pixels + future + odd_modality)

    summary = reconcile_archive()
    assert not summary.failed
    expectations = {
        no_pixels[0].StudyInstanceUID: {"MISSING_PIXEL_DATA"},
        future[0].StudyInstanceUID: {"INVALID_STUDY_DATE"},
        odd_modality[0].StudyInstanceUID: {"MODALITY_NOT_ALLOWED", "MISSING_ACCESSION_NUMBER"},
    }
    for study_uid, codes in expectations.items():
        entry = find_quarantined(pipeline_settings, study_uid)
        assert entry is not None and entry.state == "open"
        assert {reason["code"] for reason in entry.reasons} == codes
        assert find_study(pipeline_settings, study_uid) is None


def test_reingesting_is_idempotent_and_picks_up_new_series(
    pipeline_settings: Settings,
) -> None:
    datasets = clone_study("CT", limit=4)
    upload(pipeline_settings, datasets)
    reconcile_archive()
    reconcile_archive(since=0)  # everything again: nothing duplicates
    study = find_study(pipeline_settings, datasets[0].StudyInstanceUID)
    assert study.instance_count == 4
    time.sleep(1.1)  # Orthanc's LastUpdate has whole seconds

    extra = clone_study("CT", limit=2)
    for ds in extra:
        ds.StudyInstanceUID = datasets[0].StudyInstanceUID
        ds.SeriesInstanceUID = generate_uid()
    upload(pipeline_settings, extra)
    reconcile_archive()
    with open_session(pipeline_settings.database_url) as session:
        rows = session.scalars(
            select(Study).where(Study.study_instance_uid == datasets[0].StudyInstanceUID)
        ).all()
        assert len(rows) == 1
        assert rows[0].instance_count == 6
        assert len(rows[0].series) == rows[0].series_count
        assert rows[0].received_at == study.received_at, "turnaround counts from the first"


def test_deleting_in_the_archive_marks_the_study_removed(pipeline_settings: Settings) -> None:
    datasets = clone_study("DX")
    upload(pipeline_settings, datasets)
    reconcile_archive()
    study = find_study(pipeline_settings, datasets[0].StudyInstanceUID)
    with ArchiveClient.from_settings(pipeline_settings) as client:
        client.delete_study(study.orthanc_id)
    reconcile_archive()
    removed = find_study(pipeline_settings, datasets[0].StudyInstanceUID)
    assert removed.status == "removed" and removed.removed_at is not None


def test_most_studies_gone_from_the_archive_are_withheld_until_an_operator_accepts(
    pipeline_settings: Settings, orthanc_env: dict[str, str]
) -> None:
    """An archive that lost hundreds of the database's studies at once (say Orthanc started
    on an empty database) does not empty the worklist; `pacs ingest --accept-removals` does
    remove them when they really were deleted."""
    from tests.support.apps import make_study
    from tests.support.services import run_pacs

    lost = 400
    with open_session(pipeline_settings.database_url) as session:
        session.add_all(
            make_study(index, study_instance_uid=f"2.25.{index + 1}") for index in range(lost)
        )
    datasets = clone_study("DX")
    upload(pipeline_settings, datasets)

    summary = reconcile_archive()
    assert summary.withheld == lost and summary.outcomes["removed"] == 0
    assert find_study(pipeline_settings, datasets[0].StudyInstanceUID).status == "received"
    env = {**orthanc_env, "PACS_DATABASE_URL": pipeline_settings.database_url}
    refused = run_pacs(env, "ingest")
    assert refused.returncode == 1
    assert f"{lost} studies are no longer in the archive" in refused.stderr
    assert "--accept-removals" in refused.stderr
    with open_session(pipeline_settings.database_url) as session:
        statuses = session.scalars(
            select(Study.status).where(Study.study_instance_uid.like("2.25.%"))
        )
        assert set(statuses) == {"received"}

    accepted = run_pacs(env, "ingest", "--accept-removals")
    assert accepted.returncode == 0, accepted.stderr
    assert f"{lost} removed" in accepted.stdout
    with open_session(pipeline_settings.database_url) as session:
        statuses = session.scalars(
            select(Study.status).where(Study.study_instance_uid.like("2.25.%"))
        )
        assert set(statuses) == {"removed"}


@pytest.mark.slow
def test_nothing_is_lost_while_the_platform_or_orthanc_is_down(
    tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Studies arrive with no portal listening, one of them while Orthanc stops mid-study."""
    env = make_env(
        tmp_path,
        PACS_ORTHANC_STABLE_AGE="30",
        PACS_DATABASE_URL=new_database(tmp_path / "pacs.sqlite3"),
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(env)
    register_test_callers(settings)
    process = start_orthanc(settings)
    try:
        studies = [clone_study("CR"), clone_study("DX"), clone_study("US")]
        for datasets in studies:
            send_datasets(
                datasets,
                host="127.0.0.1",
                port=settings.orthanc_dicom_port,
                called_aet=settings.orthanc_aet,
            )
        stop_orthanc(settings)  # long before any study settled: no StableStudy event at all
        process.wait()
        process = start_orthanc(settings)
        summary = reconcile_archive()
        assert not summary.failed
        for datasets in studies:
            study = find_study(settings, datasets[0].StudyInstanceUID)
            assert study is not None and study.instance_count == len(datasets)
    finally:
        stop_orthanc(settings)
        process.wait()


def test_webhook_refuses_wrong_secret_and_bad_ids(pipeline_settings: Settings) -> None:
    submitted: list[str] = []

    class Recorder:
        def submit(self, orthanc_study_id: str) -> None:
            submitted.append(orthanc_study_id)

    client = create_app({"PACS_SETTINGS": pipeline_settings, "PACS_PIPELINE": Recorder()})
    client = client.test_client()
    notice = {
        "ChangeType": "StableStudy",
        "ResourceType": "Study",
        "ID": "0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d",
    }
    secret = {"X-Pacs-Webhook-Secret": pipeline_settings.webhook_secret}

    wrong = client.post(
        "/api/v1/hooks/orthanc", json=notice, headers={"X-Pacs-Webhook-Secret": "x"}
    )
    assert wrong.status_code == 401 and wrong.json["error"]
    bad_id = client.post("/api/v1/hooks/orthanc", json={**notice, "ID": "../../x"}, headers=secret)
    assert bad_id.status_code in (400, 422) and "error" in bad_id.json
    not_json = client.post(
        "/api/v1/hooks/orthanc", data="{", headers={**secret, "Content-Type": "application/json"}
    )
    assert 400 <= not_json.status_code < 500
    assert submitted == []
    for refused in ({"ChangeType": "NewInstance"}, {"ResourceType": "Series"}):
        answer = client.post("/api/v1/hooks/orthanc", json={**notice, **refused}, headers=secret)
        assert answer.status_code == 422 and "StableSeries" in answer.json["error"]
    assert submitted == []
    ok = client.post("/api/v1/hooks/orthanc", json=notice, headers=secret)
    assert ok.status_code == 202
    arriving = {**notice, "ChangeType": "StableSeries"}
    assert client.post("/api/v1/hooks/orthanc", json=arriving, headers=secret).status_code == 202
    assert submitted == [notice["ID"], notice["ID"]]


@pytest.mark.slow
def test_quarantine_release_and_delete_from_the_cli(
    pipeline_settings: Settings, orthanc_env: dict[str, str]
) -> None:
    from tests.support.services import run_pacs

    held = clone_study("CR", limit=1, Modality="ZZ")
    doomed = clone_study("CR", limit=1, Modality="ZZ")
    upload(pipeline_settings, held + doomed)
    env = {**orthanc_env, "PACS_DATABASE_URL": pipeline_settings.database_url}
    assert run_pacs(env, "ingest").returncode == 0
    listing = run_pacs(env, "quarantine", "list").stdout
    assert held[0].StudyInstanceUID in listing and "ZZ is not among" in listing

    released = run_pacs(env, "quarantine", "release", held[0].StudyInstanceUID)
    assert released.returncode == 0, released.stderr
    study = find_study(pipeline_settings, held[0].StudyInstanceUID)
    assert study.status == "received"
    assert "released from quarantine" in study.warnings[0]["message"]

    deleted = run_pacs(env, "quarantine", "delete", doomed[0].StudyInstanceUID)
    assert deleted.returncode == 0, deleted.stderr
    with ArchiveClient.from_settings(pipeline_settings) as client:
        assert client.find_study_ids(doomed[0].StudyInstanceUID) == []
    again = run_pacs(env, "quarantine", "delete", doomed[0].StudyInstanceUID)
    assert again.returncode == 1 and "no open quarantine entry" in again.stderr

    status = run_pacs(env, "ingest", "--status")
    assert status.returncode == 0, status.stderr
    assert "0 changes behind" in status.stdout and "waiting for retry: 0" in status.stdout


def test_unknown_study_id_is_reported_removed_not_crashing(pipeline_settings: Settings) -> None:
    from flows.ingest_study import ingest_study

    outcome = ingest_study("0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d")
    assert outcome.outcome == "removed"


def test_latin1_and_utf8_names_are_decoded(pipeline_settings: Settings) -> None:
    latin1 = clone_study(
        "CR",
        limit=1,
        SpecificCharacterSet="ISO_IR 100",
        PatientName="Müller^Jürgen",
        ReferringPhysicianName="Señor^José",
    )
    utf8 = clone_study(
        "CR", limit=1, SpecificCharacterSet="ISO_IR 192", PatientName="Ødegård^Åse=山田^太郎"
    )
    upload(pipeline_settings, latin1 + utf8)
    reconcile_archive()
    assert find_study(pipeline_settings, latin1[0].StudyInstanceUID).patient_name == (
        "Müller^Jürgen"
    )
    assert find_study(pipeline_settings, latin1[0].StudyInstanceUID).referring_physician == (
        "Señor^José"
    )
    assert find_study(pipeline_settings, utf8[0].StudyInstanceUID).patient_name.startswith(
        "Ødegård^Åse"
    )


@pytest.mark.parametrize(
    ("instances", "per_series"),
    [(30, 10), (GLIMPSE_ABOVE + 30, GLIMPSE_ABOVE + 10)],
    ids=["small series", "big first series, listed from one instance first"],
)
def test_a_study_is_listed_while_it_arrives_then_completes(
    pipeline_settings: Settings, portal: EmbeddedPipeline, instances: int, per_series: int
) -> None:
    """PACS_WORKLIST_ARRIVING=series (the default): a STAT CT is on the worklist once its first
    series is complete, as arriving, at STAT at once, its image count growing; complete at
    the archive's stable event, when its turnaround starts, with every image's evidence."""
    assert pipeline_settings.worklist_arriving == "series"
    big = BigStudy(instances=instances, per_series=per_series, pixel_step=8, priority="STAT")
    seen: list[tuple[bool, int, str]] = []
    with ArchiveClient.from_settings(pipeline_settings) as client:
        big.store(client, series=range(0, 1))
        # The next series trickle in, one slice every half stable age: never stable till the end.
        for part10 in big.part10s(series=range(1, len(big.series_uids))):
            client.store_instances([part10])
            if (row := find_study(pipeline_settings, big.study_instance_uid)) is not None:
                seen.append((is_arriving(pipeline_settings, row), row.instance_count, row.priority))
            time.sleep(pipeline_settings.orthanc_stable_age / 4)
    assert seen, "the study was not listed while it arrived"
    assert all(arriving for arriving, _, _ in seen)
    assert all(priority == "STAT" for _, _, priority in seen)
    assert per_series <= seen[0][1] < instances
    deadline = time.monotonic() + 60
    # On a loaded machine the archive may call the study stable between two slices; the
    # last slices then update the complete row.
    while (study := wait_for_study(pipeline_settings, big.study_instance_uid)).instance_count < (
        instances
    ):
        assert time.monotonic() < deadline, f"{study.instance_count} of {instances} images listed"
        time.sleep(0.2)
    assert study.instance_count == instances and study.series_count == len(big.series_uids)
    assert not is_arriving(pipeline_settings, study)
    with open_session(pipeline_settings.database_url) as session:
        evidence = session.scalar(
            select(func.count()).select_from(EvidenceItem).where(EvidenceItem.study_id == study.id)
        )
    assert evidence == instances, "every image recorded, read once complete"
    assert study.received_at.timestamp() >= time.time() - 30
    with open_session(pipeline_settings.database_url) as session:
        events = session.scalars(
            select(StudyEvent.kind).where(StudyEvent.study_id == study.id)
        ).all()
    assert events == ["received"], "received once, when complete"
