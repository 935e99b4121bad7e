"""`pacs import` against a real Orthanc: folders, ZIP archives, DICOMDIR media, raw data sets,
truncated and text files, duplicates, an archive that is down, and the summary."""

from __future__ import annotations

import copy
import io
import json
import time
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.fileset import FileSet
from pydicom.filewriter import write_dataset
from sqlalchemy import select

from config.settings import Settings
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.import_log import StudyPlace, locate_studies
from storage.import_sender import import_paths
from storage.models.accounts import AuditEvent
from storage.models.imports import ImportRun
from tests.support.databases import new_database
from tests.support.pipeline import find_quarantined, wait_for_study
from tests.support.services import find_free_port, run_pacs
from tests.support.studies import clone_study, write_files


@pytest.fixture
def env(orthanc_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The session's archive with a database of this test's own."""
    return {**orthanc_env, "PACS_DATABASE_URL": new_database(tmp_path / "pacs.sqlite3")}


def import_json(env: dict[str, str], *paths: Path) -> tuple[int, dict]:
    result = run_pacs(env, "import", "--json", *map(str, paths))
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def by_name(summary: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in summary["files"]}


def archived_sop_uids(archive: ArchiveClient, study_uid: str) -> set[str]:
    found = archive.find("Instance", {"StudyInstanceUID": study_uid})
    return {instance["MainDicomTags"]["SOPInstanceUID"] for instance in found}


def raw_bytes(ds: Dataset) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    return buffer.getvalue()


def test_a_folder_with_raw_truncated_and_text_files(
    env: dict[str, str], archive: ArchiveClient, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    cr = clone_study("CR")
    write_files(cr, folder / "cr")
    mr = clone_study("MR", limit=3)
    write_files(mr, folder / "deeper" / "still" / "mr")
    raw = clone_study("DX", limit=1)[0]
    (folder / "raw.bin").write_bytes(raw_bytes(raw))
    truncated = (folder / "cr" / "0000.dcm").read_bytes()
    (folder / "truncated.dcm").write_bytes(truncated[: len(truncated) // 2])
    (folder / "notes.txt").write_text("Patient called about the CD.\n")

    status, summary = import_json(env, folder)

    assert status == 1  # something was rejected
    files = by_name(summary)
    assert summary["counts"] == {"stored": 6, "already_stored": 0, "rejected": 2, "ignored": 0}
    root = str(folder)
    assert files[f"{root}/truncated.dcm"]["refusal"] == "truncated"
    assert files[f"{root}/notes.txt"]["refusal"] == "not_dicom"
    assert files[f"{root}/notes.txt"]["reason"] == "not DICOM"
    assert files[f"{root}/raw.bin"]["outcome"] == "stored"
    assert files[f"{root}/deeper/still/mr/0002.dcm"]["outcome"] == "stored"
    assert set(summary["studies"]) == {
        cr[0].StudyInstanceUID,
        mr[0].StudyInstanceUID,
        raw.StudyInstanceUID,
    }
    assert archived_sop_uids(archive, cr[0].StudyInstanceUID) == {ds.SOPInstanceUID for ds in cr}
    assert archived_sop_uids(archive, mr[0].StudyInstanceUID) == {ds.SOPInstanceUID for ds in mr}
    # The raw data set was wrapped, not stored broken: the archive serves a proper Part 10 file.
    [stored] = archive.find("Instance", {"SOPInstanceUID": raw.SOPInstanceUID}, expand=False)
    read_back = pydicom.dcmread(io.BytesIO(archive.get_instance_file(stored)))
    assert read_back.file_meta.MediaStorageSOPInstanceUID == raw.SOPInstanceUID
    assert read_back.PixelData == raw.PixelData
    assert read_back.PatientName == raw.PatientName
    # Nothing was stored for the truncated copy or the text (the CR study holds its own two).
    assert len(archive.find("Instance", {"StudyInstanceUID": cr[0].StudyInstanceUID})) == len(cr)

    # The import is recorded and audited with its counts.
    with open_session(env["PACS_DATABASE_URL"]) as session:
        run = session.get(ImportRun, summary["id"])
        assert run.counts == summary["counts"] and run.source == "cli"
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "import"))
        assert event.outcome == "error"
        assert event.user_email.startswith("cli:")
        assert "6 stored" in event.detail and "2 rejected" in event.detail


def test_importing_twice_skips_what_the_archive_holds(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "study"
    write_files(clone_study("CT", limit=4), folder)
    first = run_pacs(env, "import", str(folder))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("import: 4 stored, 0 already in the archive, 0 rejected")
    status, summary = import_json(env, folder)
    assert status == 0
    assert summary["counts"]["already_stored"] == 4
    assert {f["reason"] for f in summary["files"]} == {
        "already in the archive with the same content: skipped"
    }


@pytest.mark.slow
def test_same_uid_with_other_content_is_refused_and_the_archive_keeps_its_own(
    env: dict[str, str], archive: ArchiveClient, tmp_path: Path
) -> None:
    [original] = clone_study("CR", limit=1)
    write_files([original], tmp_path / "a")
    assert run_pacs(env, "import", str(tmp_path / "a")).returncode == 0
    changed = copy.deepcopy(original)
    changed.PatientName = "Someone^Else"
    write_files([changed], tmp_path / "b")
    status, summary = import_json(env, tmp_path / "b")
    assert status == 1
    [entry] = summary["files"]
    assert entry["refusal"] == "different_content"
    [stored] = archive.find("Instance", {"SOPInstanceUID": original.SOPInstanceUID}, expand=False)
    kept = pydicom.dcmread(io.BytesIO(archive.get_instance_file(stored)))
    assert kept.PatientName == original.PatientName


def test_the_same_instance_received_by_c_store_counts_as_already_there(
    env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """Orthanc writes its own file meta for C-STORE: the data set decides, not the meta."""
    from tests.support.studies import run_storescu

    files = write_files(clone_study("US", limit=2), tmp_path / "us")
    run_storescu(settings, files)
    status, summary = import_json(env, tmp_path / "us")
    assert status == 0, summary
    assert summary["counts"]["already_stored"] == 2


def test_a_zip_with_unsafe_members_and_media_clutter(
    env: dict[str, str], archive: ArchiveClient, tmp_path: Path
) -> None:
    ct = clone_study("CT", limit=3)
    paths = write_files(ct, tmp_path / "ct")
    bundle = tmp_path / "from-colleague.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in paths:
            zf.write(path, f"study/{path.name}")
        zf.writestr("../../escape.dcm", paths[0].read_bytes())
        zf.writestr("__MACOSX/study/._0000.dcm", b"\x00\x05\x16\x07")
        zf.writestr("report.txt", "see images")
        zf.writestr("inner.zip", zip_bytes({"x.dcm": paths[1].read_bytes()}))

    status, summary = import_json(env, bundle)

    assert status == 1
    files = by_name(summary)
    assert summary["counts"] == {"stored": 3, "already_stored": 0, "rejected": 3, "ignored": 1}
    assert files[f"{bundle}:../../escape.dcm"]["refusal"] == "unsafe_archive"
    assert "path traversal" in files[f"{bundle}:../../escape.dcm"]["reason"]
    assert files[f"{bundle}:report.txt"]["refusal"] == "not_dicom"
    assert "ZIP archive inside" in files[f"{bundle}:inner.zip"]["reason"]
    assert files[f"{bundle}:__MACOSX/study/._0000.dcm"]["outcome"] == "ignored"
    assert archived_sop_uids(archive, ct[0].StudyInstanceUID) == {ds.SOPInstanceUID for ds in ct}
    assert not (tmp_path / "escape.dcm").exists() and not Path("escape.dcm").exists()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_without_expanding_it(env: dict[str, str], tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("0001.dcm", "w", force_zip64=True) as member,
    ):
        for _ in range(64):
            member.write(bytes(1024 * 1024))
    assert bomb.stat().st_size < 1024 * 1024
    status, summary = import_json(env, bomb)
    assert status == 1
    [entry] = summary["files"]
    assert entry["refusal"] == "unsafe_archive"
    assert "ZIP bomb" in entry["reason"]


def test_a_dicomdir_media_imports_its_referenced_files(
    env: dict[str, str], archive: ArchiveClient, tmp_path: Path
) -> None:
    media = tmp_path / "cdrom"
    mr = clone_study("MR", limit=4)
    file_set = FileSet()
    for ds in mr:
        file_set.add(ds)
    file_set.write(media)
    (media / "VIEWER").mkdir()
    (media / "VIEWER" / "viewer.exe").write_bytes(b"MZ\x90\x00 not an image")
    (media / "AUTORUN.INF").write_text("[autorun]\nopen=VIEWER\\viewer.exe\n")
    referenced = sorted(p for p in media.rglob("*") if p.is_file() and p.parent != media)
    referenced = [p for p in referenced if "VIEWER" not in p.parts]
    referenced[-1].unlink()  # a damaged disc: one referenced file is missing

    status, summary = import_json(env, media / "DICOMDIR")

    assert status == 1  # the missing file is reported
    assert summary["counts"] == {"stored": 3, "already_stored": 0, "rejected": 1, "ignored": 3}
    files = by_name(summary)
    [missing] = [f for f in summary["files"] if f["outcome"] == "rejected"]
    assert "but missing" in missing["reason"]
    assert files[f"{media}/VIEWER/viewer.exe"]["reason"] == (
        "not referenced by the DICOMDIR of its media"
    )
    assert files[f"{media}/DICOMDIR"]["outcome"] == "ignored"
    assert len(archived_sop_uids(archive, mr[0].StudyInstanceUID)) == 3


def test_every_file_is_reported_when_the_archive_is_unreachable(
    settings: Settings, tmp_path: Path
) -> None:
    paths = write_files(clone_study("CT", limit=5), tmp_path / "ct")
    (tmp_path / "ct" / "notes.txt").write_text("x")
    dead = f"http://127.0.0.1:{find_free_port()}"
    summary = import_paths(
        [(tmp_path / "ct", "ct")],
        lambda: ArchiveClient(dead, "pacs", "x", timeout=2),
        workers=2,
    )
    assert len(summary.files) == len(paths) + 1
    assert summary.counts["rejected"] == len(paths) + 1
    not_sent = [f for f in summary.files if f.refusal == "not_sent"]
    assert len(not_sent) == len(paths)
    assert all(f.reason.startswith("not sent:") for f in not_sent)


@pytest.mark.slow
def test_the_command_fails_in_one_line_when_the_archive_is_down(
    env: dict[str, str], tmp_path: Path
) -> None:
    write_files(clone_study("CT", limit=1), tmp_path / "ct")
    down = {**env, "PACS_ORTHANC_URL": f"http://127.0.0.1:{find_free_port()}"}
    result = run_pacs(down, "import", str(tmp_path / "ct"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "did not answer" in result.stderr
    missing = run_pacs(env, "import", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert "no such file or folder" in missing.stdout


@pytest.mark.usefixtures("portal")
def test_imported_studies_flow_through_ingestion_and_validation(
    orthanc_env: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The archive's notification brings imported studies onto the worklist or into
    quarantine like any other, and the import's summary then says where they are."""
    settings: Settings = request.getfixturevalue("pipeline_settings")
    good = clone_study("CT", limit=2)
    broken = clone_study("CR", limit=1, PatientID=None)
    write_files(good, tmp_path / "export" / "good")
    write_files(broken, tmp_path / "export" / "broken")
    env = {**orthanc_env, "PACS_DATABASE_URL": settings.database_url}
    status, summary = import_json(env, tmp_path / "export")
    assert status == 0, summary
    study = wait_for_study(settings, good[0].StudyInstanceUID)
    assert study.instance_count == 2
    deadline = time.monotonic() + 45
    while find_quarantined(settings, broken[0].StudyInstanceUID) is None:
        assert time.monotonic() < deadline, "the broken study did not reach the quarantine"
        time.sleep(0.2)
    with open_session(settings.database_url) as session:
        places = locate_studies(session, summary["studies"])
    assert places == {
        good[0].StudyInstanceUID: StudyPlace.WORKLIST,
        broken[0].StudyInstanceUID: StudyPlace.QUARANTINE,
    }


def test_two_zip_members_of_one_name_are_both_reported(settings: Settings, tmp_path: Path) -> None:
    first, second = clone_study("CT", limit=2)
    bundle = tmp_path / "twice.zip"
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(bundle, "w") as zf,
    ):
        zf.writestr("a.dcm", part10_bytes(first))
        zf.writestr("a.dcm", part10_bytes(second))
    summary = import_paths([(bundle, "twice.zip")], lambda: ArchiveClient.from_settings(settings))
    assert summary.counts == {"stored": 1, "already_stored": 0, "rejected": 1, "ignored": 0}
    [refused] = summary.rejected
    assert "same name" in refused.reason


def part10_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
