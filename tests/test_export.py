"""The research export end to end: archive -> `export_research` -> ZIP or research Orthanc."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select

from config.settings import Settings, load_settings
from core.accounts import Role
from core.cohorts import Cohort
from core.exports import ExportState
from flows.export_research import export_research
from flows.ingest_study import ingest_studies
from pacs.orthanc_server import start_orthanc, stop_orthanc
from pacs.pipeline import EmbeddedPipeline
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.exports import create_export, list_pseudonyms
from storage.models.exports import ExportPseudonym, ResearchExport
from tests.support.identified_studies import PATIENTS, build_identified_cohort
from tests.support.leaks import assert_clean
from tests.support.pipeline import upload
from tests.support.services import make_env, run_pacs
from tests.support.users import NOW, PASSWORD, token_for


@pytest.fixture
def export_env(
    orthanc_env: dict[str, str],
    prefect_api: str,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The session's archive, a database and PACS_HOME of this test's own (flows read the env)."""
    home = tmp_path / "home"
    env = {
        **orthanc_env,
        "PACS_DATABASE_URL": database_url,
        "PACS_HOME": str(home),
        "PACS_ORTHANC_PASSWORD": load_settings(orthanc_env).orthanc_password,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def archive_cohort(settings: Settings, datasets) -> list[str]:
    """Store and ingest the studies; returns their Study Instance UIDs."""
    upload(settings, datasets)
    uids = sorted({ds.StudyInstanceUID for ds in datasets})
    with ArchiveClient.from_settings(settings) as client:
        orthanc_ids = [client.find_study_ids(uid)[0] for uid in uids]
    ingest_studies(orthanc_ids)
    return uids


def new_export(settings: Settings, study_uids: list[str], profile: str) -> int:
    import datetime

    with open_session(settings.database_url) as session:
        export = create_export(
            session,
            cohort=Cohort(study_uids=tuple(study_uids)),
            profile=profile,
            purpose="test",
            requested_by="test",
            requester_id=None,
            now=datetime.datetime.now(datetime.UTC),
            state=ExportState.APPROVED,
        )
        return export.id


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.slow
def test_pacs_export_writes_a_clean_zip_and_a_rerun_gives_the_same(
    export_env: dict[str, str], tmp_path: Path
) -> None:
    settings = load_settings(export_env)
    cohort = build_identified_cohort()
    study_uids = archive_cohort(settings, cohort.datasets)
    out = tmp_path / "cohort.zip"
    args = ["export"] + [part for uid in study_uids for part in ("--study", uid)]
    done = run_pacs(
        export_env, *args, "--profile", "basic,modified-dates,structured-content", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "14 instances exported, 2 excluded, 0 withheld" in done.stdout
    assert "16/16 instances" in done.stderr

    files = read_zip(out)
    images = {name: data for name, data in files.items() if name.endswith(".dcm")}
    assert len(images) == 14
    for data in files.values():
        assert_clean(data, cohort.identifiers | cohort.source_uids)
    datasets = [dcmread(io.BytesIO(data)) for data in images.values()]
    for name, ds in zip(images, datasets, strict=True):
        folders = (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID)
        assert name == "/".join(folders) + f"/{ds.SOPInstanceUID}.dcm"
    sops = {ds.SOPInstanceUID for ds in datasets}
    report = json.loads(files["deidentification-report.json"])
    assert report["instances"] == {"total": 16, "exported": 14, "excluded": 2, "withheld": 0}
    excluded = {item["sop_uid"] for item in report["left_out"]}
    references = [
        elem.value
        for ds in datasets
        for elem in ds.iterall()
        if elem.keyword == "ReferencedSOPInstanceUID"
    ]
    assert references and all(uid in sops or uid in excluded for uid in references)
    manifest = list(csv.DictReader(io.StringIO(files["manifest.csv"].decode())))
    assert sum(int(row["instances"]) for row in manifest) == 14
    assert len({row["pseudonym"] for row in manifest}) == len(PATIENTS)

    # The same export again: same pseudonyms, same UIDs, same bytes.
    with open_session(settings.database_url) as session:
        export_id = session.scalar(select(ResearchExport.id))
    again = tmp_path / "again.zip"
    done = run_pacs(export_env, "export", "--rerun", str(export_id), "--out", str(again))
    assert done.returncode == 0, done.stderr
    assert read_zip(again) == files
    # The mapping stays in the database, one row per patient.
    with open_session(settings.database_url) as session:
        assert len(list_pseudonyms(session, export_id)) == len(PATIENTS)


def test_a_leaking_instance_is_withheld_and_the_report_says_why(
    export_env: dict[str, str],
) -> None:
    settings = load_settings(export_env)
    cohort = build_identified_cohort(with_reports=False)
    cohort.datasets[0].ConvolutionKernel = PATIENTS[0].extra_names[0]
    study_uids = archive_cohort(settings, cohort.datasets)
    export_id = new_export(settings, study_uids, "basic")
    outcome = export_research(export_id)
    assert (outcome.exported, outcome.excluded, outcome.withheld) == (12, 2, 1)
    with open_session(settings.database_url) as session:
        export = session.get(ResearchExport, export_id)
        assert export.state == "done"
        assert export.processed_instances == export.total_instances == 15
        (withheld,) = [i for i in export.report["left_out"] if i["status"] == "withheld"]
        assert "still present after de-identification" in withheld["reason"]
        assert session.scalar(select(ExportPseudonym.export_id)) == export_id
    assert Path(outcome.destination) == settings.exports_dir / f"export-{export_id}.zip"
    assert not (settings.exports_dir / f"export-{export_id}.staging").exists()


@pytest.mark.slow
def test_export_goes_to_the_research_orthanc_when_one_is_configured(
    export_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(export_env)
    cohort = build_identified_cohort(with_reports=False)
    study_uids = archive_cohort(settings, cohort.datasets)
    research = load_settings(make_env(tmp_path / "research"))
    process = start_orthanc(research)
    try:
        monkeypatch.setenv("PACS_RESEARCH_ORTHANC_URL", research.orthanc_url)
        monkeypatch.setenv("PACS_RESEARCH_ORTHANC_USER", research.orthanc_user)
        monkeypatch.setenv("PACS_RESEARCH_ORTHANC_PASSWORD", research.orthanc_password)
        outcome = export_research(new_export(settings, study_uids, "basic,modified-dates"))
        assert outcome.destination == research.orthanc_url
        with ArchiveClient.from_settings(research) as client:
            assert client.get_statistics()["CountInstances"] == outcome.exported == 13
            patients = {
                client.get_json(f"/patients/{pid}")["MainDicomTags"]["PatientName"]
                for pid in client.get_json("/patients")
            }
            assert len(patients) == len(PATIENTS) and all(p.startswith("RES-") for p in patients)
            for instance_id in client.get_json("/instances"):
                assert_clean(client.get_instance_file(instance_id), cohort.identifiers)
    finally:
        stop_orthanc(research)
        process.wait(timeout=30)


def test_portal_request_approval_runs_the_export_and_the_researcher_downloads_it(
    export_env: dict[str, str],
) -> None:
    settings = load_settings(export_env)
    cohort = build_identified_cohort(with_reports=False)
    study_uids = archive_cohort(settings, cohort.datasets)
    app = create_app(
        {"PACS_SETTINGS": settings, "PACS_PIPELINE": EmbeddedPipeline(), "TESTING": True}
    )
    with app.app_context():
        for role in (Role.RESEARCHER, Role.ADMIN):
            create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW)
        db.session.commit()
    client = app.test_client()
    researcher, admin = token_for(client, "researcher"), token_for(client, "admin")
    body = {
        "cohort": {"study_uids": study_uids},
        "profile": "basic,modified-dates",
        "purpose": "End-to-end check of the research export",
    }
    export_id = client.post("/api/v1/exports", json=body, headers=researcher).json["id"]
    approved = client.post(f"/api/v1/exports/{export_id}/approve", json={}, headers=admin)
    assert approved.status_code == 200
    deadline = time.monotonic() + 180
    while (state := client.get(f"/api/v1/exports/{export_id}", headers=researcher).json)[
        "state"
    ] not in ("done", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert state["state"] == "done", state["reason"]
    assert state["progress"] == {
        "total": 15,
        "processed": 15,
        "exported": 13,
        "excluded": 2,
        "withheld": 0,
    }
    download = client.get(f"/api/v1/exports/{export_id}/download", headers=researcher)
    assert download.status_code == 200
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        names = archive.namelist()
        assert len([n for n in names if n.endswith(".dcm")]) == 13
        for name in names:
            assert_clean(archive.read(name), cohort.identifiers | cohort.source_uids)


@pytest.mark.slow
def test_pacs_export_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    for args, message in (
        (["--profile", "basic,keep-names"], "unknown profile option(s) keep-names"),
        (["--from", "2024-13-01"], "date_from '2024-13-01' is not a date"),
        (["--modality", "CT"], "the cohort is empty"),
        (["--rerun", "42"], "no export 42"),
    ):
        done = run_pacs(env, "export", *args)
        assert done.returncode == 1, done.stdout
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
