"""The DICOM port accepts registered modalities only: real Orthanc, real dcmtk and pynetdicom.

`pacs modality add|list|remove` (and the admin page) keep the list in the operational
database; Orthanc is brought in line at start and on every change. Unknown AEs, and
known ones calling from another address, are refused store, find, move and get, and
Orthanc's log names them.
"""

from __future__ import annotations

import datetime
import io
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pydicom
import pytest
from flask import Flask
from sqlalchemy import select

from config.settings import Settings, load_settings
from core.accounts import Role
from pacs.cli import main
from pacs.modality_commands import apply_to_archive
from pacs.orthanc_server import OrthancPaths, start_orthanc, stop_orthanc
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user, find_user
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.dicom_sender import DicomSendError, send_datasets
from storage.modalities import list_modalities
from storage.models.accounts import AuditEvent
from tests.support.services import find_free_port, make_env, run_pacs
from tests.support.studies import clone_study, write_files

PASSWORD = "correct horse battery staple"


@dataclass
class Archive:
    """A real Orthanc of this module's own, with its own operational database."""

    env: dict[str, str]
    settings: Settings
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = start_orthanc(self.settings)

    def stop(self) -> None:
        stop_orthanc(self.settings)
        if self.process is not None:
            self.process.wait(timeout=30)
            self.process = None

    def log(self) -> str:
        return OrthancPaths(self.settings.orthanc_dir).log.read_text(errors="replace")


def start_archive(home: Path, **overrides: str) -> Iterator[Archive]:
    env = make_env(home, **overrides)
    archive = Archive(env, load_settings(env))
    archive.start()
    try:
        yield archive
    finally:
        archive.stop()


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    """The default: registered modalities only, callers' addresses checked."""
    yield from start_archive(tmp_path_factory.mktemp("closed-port"))


@pytest.fixture(scope="module")
def study_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    [path] = write_files(clone_study("CR", limit=1), tmp_path_factory.mktemp("one-study"))
    return path


def dcmtk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args), env={**os.environ, "TCP_NODELAY": "1"}, capture_output=True, timeout=60
    )


def storescu(archive: Archive, aet: str, path: Path) -> subprocess.CompletedProcess:
    settings = archive.settings
    port = str(settings.orthanc_dicom_port)
    return dcmtk(
        "storescu", "-aet", aet, "-aec", settings.orthanc_aet, "127.0.0.1", port, str(path)
    )


def findscu(archive: Archive, aet: str, study_uid: str, folder: Path) -> list[Path]:
    """The study-level matches the archive answers to `aet` (one file each, dcmtk's -X)."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = archive.settings
    dcmtk(
        "findscu", "-S", "-aet", aet, "-aec", settings.orthanc_aet, "-X", "-od", str(folder),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
        "127.0.0.1", str(settings.orthanc_dicom_port),
    )  # fmt: skip
    return sorted(folder.iterdir())


def movescu(
    archive: Archive, aet: str, study_uid: str, port: int, folder: Path
) -> subprocess.CompletedProcess:
    """Ask the archive to send the study to `aet` itself, received on `port` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = archive.settings
    return dcmtk(
        "movescu", "-S", "-aet", aet, "-aem", aet, "-aec", settings.orthanc_aet,
        "+P", str(port), "-od", str(folder),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
        "127.0.0.1", str(settings.orthanc_dicom_port),
    )  # fmt: skip


def getscu(archive: Archive, aet: str, study_uid: str, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    settings = archive.settings
    return dcmtk(
        "getscu", "-S", "-aet", aet, "-aec", settings.orthanc_aet, "-od", str(folder),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
        "127.0.0.1", str(settings.orthanc_dicom_port),
    )  # fmt: skip


def study_uid_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`pacs ARGS` in this process (the console script's own `main`): no start-up cost."""
    out, err = io.StringIO(), io.StringIO()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    with (
        mock.patch.dict(os.environ, {**clean, **env}, clear=True),
        redirect_stdout(out),
        redirect_stderr(err),
    ):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def add_modality(archive: Archive, aet: str, host: str = "127.0.0.1", port: int = 104) -> None:
    added = run_cli(archive.env, "modality", "add", aet, "--host", host, "--port", str(port))
    assert added.returncode == 0, added.stderr
    assert "the archive now accepts" in added.stdout


def assert_refused_and_logged(archive: Archive, result: subprocess.CompletedProcess, aet: str):
    assert result.returncode != 0, result.stdout
    assert b"Rejected" in result.stdout + result.stderr  # the association, at once
    assert f"Rejected association for remote AET {aet} on IP 127.0.0.1" in archive.log()


def test_an_unknown_ae_is_refused_store_find_move_and_get_a_registered_one_is_served(
    closed: Archive, study_file: Path, tmp_path: Path
) -> None:
    study_uid = study_uid_of(study_file)
    receive_port = find_free_port()
    add_modality(closed, "CT-ROOM1", port=receive_port)

    assert_refused_and_logged(closed, storescu(closed, "STRANGER", study_file), "STRANGER")
    with ArchiveClient.from_settings(closed.settings) as client:
        assert client.find_study_ids(study_uid) == []

    stored = storescu(closed, "CT-ROOM1", study_file)
    assert stored.returncode == 0, stored.stderr
    assert findscu(closed, "SNOOPER", study_uid, tmp_path / "snooped") == []
    assert "Rejected association for remote AET SNOOPER on IP 127.0.0.1" in closed.log()
    [match] = findscu(closed, "CT-ROOM1", study_uid, tmp_path / "found")
    assert pydicom.dcmread(match).StudyInstanceUID == study_uid

    refused_move = movescu(closed, "THIEF", study_uid, find_free_port(), tmp_path / "thief")
    assert_refused_and_logged(closed, refused_move, "THIEF")
    assert not any((tmp_path / "thief").iterdir())
    moved = movescu(closed, "CT-ROOM1", study_uid, receive_port, tmp_path / "moved")
    assert moved.returncode == 0, moved.stderr
    assert len(list((tmp_path / "moved").iterdir())) == 1

    assert_refused_and_logged(closed, getscu(closed, "GETTER", study_uid, tmp_path / "g"), "GETTER")
    assert not any((tmp_path / "g").iterdir())
    got = getscu(closed, "CT-ROOM1", study_uid, tmp_path / "got")
    assert got.returncode == 0, got.stderr
    assert len(list((tmp_path / "got").iterdir())) == 1


def test_pynetdicom_store_from_an_unknown_ae_is_refused(closed: Archive) -> None:
    datasets = clone_study("DX", limit=1)
    settings = closed.settings
    target = dict(host="127.0.0.1", port=settings.orthanc_dicom_port, called_aet="ORTHANC")
    with pytest.raises(DicomSendError, match="does it accept this AE title"):
        send_datasets(datasets, calling_aet="PYSTRANGER", **target)
    assert "Rejected association for remote AET PYSTRANGER on IP 127.0.0.1" in closed.log()
    add_modality(closed, "PYMODALITY")
    assert send_datasets(datasets, calling_aet="PYMODALITY", **target).sent == 1


def test_a_registered_ae_calling_from_another_address_is_refused(
    closed: Archive, study_file: Path
) -> None:
    add_modality(closed, "MR-ROOM2", host="127.0.0.2")
    result = storescu(closed, "MR-ROOM2", study_file)
    assert_refused_and_logged(closed, result, "MR-ROOM2")
    assert "127.0.0.2 was expected" in closed.log()


def test_removing_a_modality_takes_effect_and_the_list_survives_a_restart(
    closed: Archive, study_file: Path
) -> None:
    add_modality(closed, "US-ROOM3")
    add_modality(closed, "CR-ROOM4")
    listed = run_pacs(closed.env, "modality", "list")
    assert re.search(r"^US-ROOM3\t127\.0\.0\.1\t104\t", listed.stdout, re.MULTILINE)
    assert storescu(closed, "US-ROOM3", study_file).returncode == 0

    removed = run_cli(closed.env, "modality", "remove", "us-room3")  # any case, as Orthanc
    assert removed.returncode == 0, removed.stderr
    assert "US-ROOM3" not in run_cli(closed.env, "modality", "list").stdout
    again = run_pacs(closed.env, "modality", "remove", "US-ROOM3")
    assert again.returncode == 1
    assert again.stderr == "pacs: AE title US-ROOM3 is not registered\n"
    assert_refused_and_logged(closed, storescu(closed, "US-ROOM3", study_file), "US-ROOM3")

    # A stopped archive reads the list from the database when it starts.
    closed.stop()
    stopped = run_cli(closed.env, "modality", "remove", "CR-ROOM4")
    assert stopped.returncode == 0 and "applies the list when it starts" in stopped.stdout
    add_modality_offline = run_cli(
        closed.env, "modality", "add", "NM-ROOM5", "--host", "127.0.0.1", "--port", "104"
    )
    assert add_modality_offline.returncode == 0
    closed.start()
    assert storescu(closed, "NM-ROOM5", study_file).returncode == 0
    assert storescu(closed, "CR-ROOM4", study_file).returncode != 0
    assert storescu(closed, "CT-ROOM1", study_file).returncode == 0


def test_bringing_the_archive_in_line_is_idempotent_and_drops_strangers(closed: Archive) -> None:
    with ArchiveClient.from_settings(closed.settings) as client:
        client.put_modality("ROGUE", {"AET": "ROGUE", "Host": "127.0.0.1", "Port": 104})
        apply_to_archive(closed.settings)
        first = client.get_json("/modalities", expand="")
        apply_to_archive(closed.settings)
        assert client.get_json("/modalities", expand="") == first
    with open_session(closed.settings.database_url) as session:
        registered = {m.aet for m in list_modalities(session)}
    assert set(first) == registered and "ROGUE" not in first
    assert first["CT-ROOM1"]["AllowStore"] and first["CT-ROOM1"]["AllowMove"]


def test_accept_any_opens_store_to_every_ae_and_host_checks_can_be_off(
    tmp_path_factory: pytest.TempPathFactory, study_file: Path, tmp_path: Path
) -> None:
    home = tmp_path_factory.mktemp("open-port")
    for archive in start_archive(home, PACS_DICOM_ACCEPT_ANY="1", PACS_DICOM_CHECK_HOST="0"):
        assert storescu(archive, "ANYBODY", study_file).returncode == 0
        assert dcmtk(
            "echoscu", "-aet", "ANYBODY", "-aec", "ORTHANC",
            "127.0.0.1", str(archive.settings.orthanc_dicom_port),
        ).returncode == 0  # fmt: skip
        # Queries stay for registered modalities; host checking off lets one call from anywhere.
        study_uid = study_uid_of(study_file)
        assert findscu(archive, "ANYBODY", study_uid, tmp_path / "anybody") == []
        assert (
            'Rejected Find request from remote DICOM modality with AET "ANYBODY" and hostname'
            ' "127.0.0.1"' in archive.log()
        )
        add_modality(archive, "PACS-WS", host="127.0.0.2")
        [match] = findscu(archive, "PACS-WS", study_uid, tmp_path / "workstation")
        assert pydicom.dcmread(match).StudyInstanceUID == study_uid


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "CT1", "--host", "127.0.0.1", "--port", "0"], "not a TCP port"),
        (["add", "CT1", "--host", "127.0.0.1", "--port", "70000"], "not a TCP port"),
        (["add", "CT1", "--host", "127.0.0.1", "--port", "eleven"], "not a whole number"),
        (["add", "A_TITLE_TOO_LONG_1", "--host", "127.0.0.1", "--port", "104"], "longer than 16"),
        (["add", "CT/1", "--host", "127.0.0.1", "--port", "104"], "may hold only"),
        (["add", "CT 1", "--host", "127.0.0.1", "--port", "104"], "may hold only"),
        (["add", "..", "--host", "127.0.0.1", "--port", "104"], "may hold only"),
        (["add", "CT\\1", "--host", "127.0.0.1", "--port", "104"], "may hold only"),
        (["add", "CT1", "--host", "ct.example.org", "--port", "104"], "not an IP address"),
        (["add", "CT1", "--host", "127.0.0.1", "--port", "104", "--description", "x" * 300],
         "description is longer"),
        (["add", "DUP", "--host", "127.0.0.1", "--port", "104"], "already registered"),
        (["add", "dup", "--host", "10.0.0.9", "--port", "11112"], "already registered"),
        (["remove", "NOSUCH"], "not registered"),
    ],
)  # fmt: skip
def test_modality_command_errors_exit_1_with_one_line(
    tmp_path_factory: pytest.TempPathFactory, args: list[str], message: str
) -> None:
    env = make_env(tmp_path_factory.getbasetemp() / "modality-cli")
    run_cli(env, "modality", "add", "DUP", "--host", "127.0.0.1", "--port", "104")
    result = run_cli(env, "modality", *args)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pacs: ") and message in lines[0], lines
    listed = run_cli(env, "modality", "list").stdout
    assert [line.split("\t")[0] for line in listed.splitlines()] == ["DUP"]


# --- the admin page -------------------------------------------------------------------------


@pytest.fixture
def portal(closed: Archive) -> Flask:
    """The portal on the module's archive and database, one user per role."""
    app = create_app({"PACS_SETTINGS": closed.settings, "TESTING": True})
    with app.app_context():
        for role in Role:
            email = f"{role}@modalities.example"
            if find_user(db.session, email) is None:
                create_user(db.session, email, PASSWORD, role, datetime.datetime.now(datetime.UTC))
        db.session.commit()
    return app


def sign_in(app: Flask, role: Role):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login",
        data={
            "email": f"{role}@modalities.example",
            "password": PASSWORD,
            "csrf_token": csrf_token_of(page),
        },
    )
    assert response.status_code == 302
    return client


def csrf_token_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_the_modalities_page_is_for_admins_only(portal: Flask, closed: Archive) -> None:
    for role in Role:
        client = sign_in(portal, role)
        page = client.get("/admin/modalities")
        if role == Role.ADMIN:
            assert page.status_code == 200 and "CT-ROOM1" in page.get_data(as_text=True)
        else:
            assert page.status_code == 403, role
            token = csrf_token_of(client.get("/", follow_redirects=True).get_data(as_text=True))
            form = {"aet": "SNEAKY", "host": "127.0.0.1", "port": "104", "csrf_token": token}
            assert client.post("/admin/modalities", data=form).status_code == 403
            remove = {"aet": "CT-ROOM1", "csrf_token": token}
            assert client.post("/admin/modalities/remove", data=remove).status_code == 403
    assert "SNEAKY" not in run_cli(closed.env, "modality", "list").stdout


def test_an_admin_registers_and_removes_a_modality_and_the_archive_follows(
    portal: Flask, closed: Archive, study_file: Path
) -> None:
    client = sign_in(portal, Role.ADMIN)
    form = {"aet": "XA-ROOM6", "host": "127.0.0.1", "port": "104", "description": "Cath lab"}
    assert client.post("/admin/modalities", data=form).status_code == 400  # no CSRF token
    token = csrf_token_of(client.get("/admin/modalities").get_data(as_text=True))
    bad = client.post("/admin/modalities", data={**form, "port": "99999", "csrf_token": token})
    assert "not a TCP port" in bad.get_data(as_text=True)
    added = client.post("/admin/modalities", data={**form, "csrf_token": token})
    assert added.status_code == 302
    page = client.get("/admin/modalities").get_data(as_text=True)
    assert "XA-ROOM6" in page and "Cath lab" in page
    assert storescu(closed, "XA-ROOM6", study_file).returncode == 0

    removed = client.post("/admin/modalities/remove", data={"aet": "XA-ROOM6", "csrf_token": token})
    assert removed.status_code == 302
    assert_refused_and_logged(closed, storescu(closed, "XA-ROOM6", study_file), "XA-ROOM6")
    with portal.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.object_id == "XA-ROOM6")
        ).all()
    assert actions == ["modality_add", "modality_remove"]
