"""`pacs backup` and `pacs restore`: what they refuse (bad input never half-restores), and a
whole site backed up while studies arrive, wiped, restored and served again."""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import load_settings
from core.accounts import Role
from pacs import orthanc_server
from pacs.backup import write_backup
from pacs.cli import main
from pacs.db_commands import upgrade_schema
from pacs.restore import MARKER
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.database_backup import summarize_database
from tests.support import postgres
from tests.support.services import PACS_COMMAND, make_env, run_pacs
from tests.support.studies import make_part10
from tests.support.tools import require_tool

NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)


def sqlite_env(home: Path) -> dict[str, str]:
    """An environment whose home is left empty (make_env would create its database)."""
    return make_env(home, PACS_DATABASE_URL=f"sqlite:///{home / 'pacs.sqlite3'}")


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def pacs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run `pacs ARGS` in this process with `env` as its PACS_* environment (the console
    script's start-up costs seconds on a loaded machine; one test runs the script itself)."""

    def run(env: dict[str, str], *args: str, stdin: str = "") -> Outcome:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            for name in [name for name in os.environ if name.startswith("PACS_")]:
                patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            patch.setattr("sys.stdin", io.StringIO(stdin))
            code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def assert_refused(done, *fragments: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("pacs: "), done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


@pytest.fixture(scope="module")
def backup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real backup of a small site: two instances, its user and secrets."""
    tmp = tmp_path_factory.mktemp("small-site")
    settings = load_settings(make_env(tmp / "site"))
    with open_session(settings.database_url) as session:
        create_user(session, "a@site.example", "a-long-passphrase", Role.ADMIN, NOW)
    process = orthanc_server.start_orthanc(settings)
    try:
        with ArchiveClient.from_settings(settings) as client:
            for _ in range(2):
                client.upload_instance(make_part10())
        summary = write_backup(settings, tmp / "backups")
    finally:
        orthanc_server.stop_orthanc(settings)
        process.wait()
    assert summary.folder.name.startswith("pacs-backup-")
    assert [p.name for p in (tmp / "backups").iterdir()] == [summary.folder.name]
    yield summary.folder


def copy_of(backup: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(backup, copy)
    return copy


def test_the_backup_is_dated_complete_and_private(backup: Path) -> None:
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["database"]["backend"] == "sqlite"
    assert manifest["database"]["tables"]["users"]["rows"] == 1
    assert manifest["archive"]["counts"] == {"studies": 2, "instances": 2}
    assert set(manifest["secrets"]) >= {"secret-key", "orthanc-password", "webhook-secret"}
    assert (backup / "secrets" / "secret-key").stat().st_mode & 0o077 == 0
    assert backup.stat().st_mode & 0o077 == 0
    assert not list(backup.parent.glob(".*")), "no partial folder left behind"


def test_a_missing_or_foreign_folder_is_refused(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path / "home")
    assert_refused(run_pacs(env, "restore", str(tmp_path / "nowhere")), "no manifest")
    (tmp_path / "empty").mkdir()
    assert_refused(run_pacs(env, "restore", str(tmp_path / "empty")), "not a backup")
    assert not (tmp_path / "home" / "pacs.sqlite3").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda m: "{not json", "cannot be read"),
        (lambda m: json.dumps({**m, "format": 99}), "not of a format"),
        (lambda m: json.dumps({**m, "database": None}), "corrupt"),
        (lambda m: json.dumps({**m, "secrets": {"../../../etc/cron.d/x": "0" * 64}}), "corrupt"),
        (lambda m: json.dumps({**m, "secrets": {"/etc/passwd": "0" * 64}}), "corrupt"),
        (lambda m: json.dumps({**m, "database": {**m["database"], "file": "../db"}}), "corrupt"),
        (
            lambda m: json.dumps({**m, "archive": {**m["archive"], "studies": {"../../x": {}}}}),
            "corrupt",
        ),
        (lambda m: json.dumps({**m, "secrets": {**m["secrets"], "extra": "0" * 64}}), "damaged"),
    ],
    ids=["json", "format", "section", "traversal", "absolute", "database-file", "study-id", "sum"],
)
def test_a_corrupt_or_hostile_manifest_is_refused_before_anything_is_written(
    pacs, backup: Path, tmp_path: Path, damage, message: str
) -> None:
    copy = copy_of(backup, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(damage(manifest))
    home = tmp_path / "home"
    assert_refused(pacs(sqlite_env(home), "restore", str(copy)), message)
    assert sorted(p.name for p in home.iterdir()) == ["secrets"]  # only the generated ones


@pytest.mark.parametrize("victim", ["database.sqlite3", "secrets/secret-key", "instance"])
def test_a_changed_or_missing_file_is_refused(
    pacs, backup: Path, tmp_path: Path, victim: str
) -> None:
    copy = copy_of(backup, tmp_path)
    path = next((copy / "archive").rglob("*.dcm")) if victim == "instance" else copy / victim
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    home = tmp_path / "home"
    assert_refused(pacs(sqlite_env(home), "restore", str(copy)), "is damaged")
    path.unlink()
    assert_refused(pacs(sqlite_env(home), "restore", str(copy)), "missing or changed")
    assert not (home / "pacs.sqlite3").exists()


def test_a_site_is_never_replaced_without_force(pacs, backup: Path, tmp_path: Path) -> None:
    site = make_env(tmp_path / "site")  # a site: its database exists
    before = (tmp_path / "site" / "pacs.sqlite3").read_bytes()
    assert_refused(pacs(site, "restore", str(backup)), "is not empty", "--force")
    assert (tmp_path / "site" / "pacs.sqlite3").read_bytes() == before

    elsewhere = tmp_path / "elsewhere.sqlite3"
    elsewhere.write_bytes(before)
    other = make_env(tmp_path / "other", PACS_DATABASE_URL=f"sqlite:///{elsewhere}")
    assert_refused(pacs(other, "restore", str(backup)), str(elsewhere))

    postgresql = sqlite_env(tmp_path / "pg")
    postgresql["PACS_DATABASE_URL"] = "postgresql+psycopg://pacs@127.0.0.1:1/pacs"
    assert_refused(pacs(postgresql, "restore", str(backup)), "same kind")

    home = tmp_path / "home"
    shutil.copytree(backup, home / "backup")
    inside = pacs(sqlite_env(home), "restore", str(home / "backup"))
    assert_refused(inside, "must not contain each other")


def test_a_backup_needs_the_archive_and_leaves_nothing_when_it_fails(pacs, tmp_path: Path) -> None:
    env = make_env(tmp_path / "site")
    assert_refused(pacs(env, "backup", str(tmp_path / "backups")), "pacs orthanc start")
    assert list((tmp_path / "backups").iterdir()) == []
    inside = pacs(env, "backup", str(tmp_path / "site" / "backups"))
    assert_refused(inside, "inside PACS_HOME")


def test_a_restore_then_force_and_an_unfinished_restore(pacs, backup: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = sqlite_env(home)
    restored = pacs(env, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "restored 2 studies (2 instances) and 1 users" in restored.stdout
    assert not (home / MARKER).exists()
    assert (home / "secrets" / "secret-key").read_bytes() == (
        backup / "secrets" / "secret-key"
    ).read_bytes()
    listed = pacs(env, "user", "list")
    assert "a@site.example" in listed.stdout, listed.stderr

    assert_refused(pacs(env, "restore", str(backup)), "is not empty")
    (home / "stray-file").write_text("replaced by --force")
    forced = pacs(env, "restore", "--force", str(backup))
    assert forced.returncode == 0, forced.stderr
    assert not (home / "stray-file").exists()

    (home / MARKER).write_text("a restore killed midway\n")
    for command in (
        ["up"],
        ["orthanc", "start"],
        ["portal"],
        ["worker"],
        ["engine", "up"],
        ["orders", "serve"],
    ):
        assert_refused(pacs(env, *command), "unfinished restore", "--force")


@pytest.fixture
def postgresql() -> Iterator[postgres.PostgresServer]:
    require_tool("initdb")
    server = postgres.start_postgres("pacs", "orthanc", "restored", "restored_orthanc")
    yield server
    server.stop()


@pytest.mark.slow  # a PostgreSQL cluster, two Orthancs, pg_dump and pg_restore
def test_a_site_on_postgresql_round_trips(
    pacs, postgresql: postgres.PostgresServer, tmp_path: Path
) -> None:
    """The database by pg_dump, Orthanc's index by pg_dump and its storage folder."""
    env = make_env(
        tmp_path / "site",
        PACS_DATABASE_URL=postgresql.url("pacs"),
        PACS_ORTHANC_DATABASE_URL=postgresql.url("orthanc", "postgresql"),
    )
    settings = load_settings(env)
    upgrade_schema(settings)
    with open_session(settings.database_url) as session:
        create_user(session, "a@site.example", "a-long-passphrase", Role.ADMIN, NOW)
    process = orthanc_server.start_orthanc(settings)
    try:
        with ArchiveClient.from_settings(settings) as client:
            stored = [client.upload_instance(make_part10()) for _ in range(3)]
            files = {s.instance_id: client.get_instance_file(s.instance_id) for s in stored}
        done = pacs(env, "backup", str(tmp_path / "backups"))
    finally:
        orthanc_server.stop_orthanc(settings)
        process.wait()
    assert done.returncode == 0, done.stderr
    assert "3 studies (3 instances)" in done.stdout
    (backup,) = (tmp_path / "backups").iterdir()
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["database"]["backend"] == "postgresql"
    assert manifest["database"]["tables"]["users"]["rows"] == 1
    assert manifest["archive"]["index"] == "postgresql" and manifest["archive"]["files"]

    restored_env = sqlite_env(tmp_path / "restored")
    restored_env["PACS_DATABASE_URL"] = postgresql.url("restored")
    restored_env["PACS_ORTHANC_DATABASE_URL"] = postgresql.url("restored_orthanc", "postgresql")
    assert_refused(pacs(sqlite_env(tmp_path / "elsewhere"), "restore", str(backup)), "same kind")
    restored = pacs(restored_env, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "restored 3 studies (3 instances) and 1 users" in restored.stdout
    after = summarize_database(postgresql.url("restored"))
    assert {t: s.to_json() for t, s in after.items()} == manifest["database"]["tables"]

    restored_settings = load_settings(restored_env)
    process = orthanc_server.start_orthanc(restored_settings)
    try:
        with ArchiveClient.from_settings(restored_settings) as client:
            assert set(client.get_json("/instances")) == set(files)
            for instance_id, data in files.items():
                assert client.get_instance_file(instance_id) == data
    finally:
        orthanc_server.stop_orthanc(restored_settings)
        process.wait()

    (tmp_path / "restored" / "orthanc").rename(tmp_path / "kept")  # the home looks empty
    again = pacs(restored_env, "restore", str(backup))
    assert_refused(again, "not empty", "tables in the database")
    forced = pacs(restored_env, "restore", "--force", str(backup))
    assert forced.returncode == 0, forced.stderr


@pytest.mark.slow  # the console script, killed, then two restores
def test_a_restore_killed_midway_is_never_served(pacs, backup: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = sqlite_env(home)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    process = subprocess.Popen(
        [str(PACS_COMMAND), "restore", str(backup)], env={**clean, **env}, stderr=subprocess.PIPE
    )
    pid_file = home / "orthanc" / "orthanc.pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists():  # the archive is being rebuilt
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the restore never started its Orthanc"
        time.sleep(0.05)
    process.kill()
    process.wait()
    process.stderr.close()
    assert (home / MARKER).exists()
    try:
        assert_refused(pacs(env, "up"), "unfinished restore")
        assert_refused(pacs(env, "restore", "--force", str(backup)), "Orthanc is running")
    finally:
        assert pacs(env, "orthanc", "stop").returncode == 0  # the killed restore's Orthanc
    forced = pacs(env, "restore", "--force", str(backup))
    assert forced.returncode == 0, forced.stderr
    assert not (home / MARKER).exists()


def test_an_unreachable_database_server_is_one_line(pacs, backup: Path, tmp_path: Path) -> None:
    env = sqlite_env(tmp_path / "site")
    env["PACS_DATABASE_URL"] = "postgresql+psycopg://pacs@127.0.0.1:1/pacs"
    assert_refused(pacs(env, "backup", str(tmp_path / "backups")), "cannot copy the database")
    assert list((tmp_path / "backups").iterdir()) == []
    # A PostgreSQL backup cannot be faked from a SQLite one: the kinds are checked first.
    copy = copy_of(backup, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["database"]["backend"] = "postgresql"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert_refused(pacs(env, "restore", str(copy)), "cannot check the target database")


def test_a_link_in_the_backup_is_refused(pacs, backup: Path, tmp_path: Path) -> None:
    """A file replaced by a link elsewhere (with its checksum) is never read through."""
    copy = copy_of(backup, tmp_path)
    outside = tmp_path / "outside"
    outside.write_bytes((copy / "secrets" / "secret-key").read_bytes())
    (copy / "secrets" / "secret-key").unlink()
    (copy / "secrets" / "secret-key").symlink_to(outside)
    assert_refused(pacs(sqlite_env(tmp_path / "home"), "restore", str(copy)), "is damaged")

    (copy / "secrets" / "secret-key").unlink()
    shutil.move(copy / "secrets", tmp_path / "secrets-elsewhere")
    (tmp_path / "secrets-elsewhere" / "secret-key").write_bytes(outside.read_bytes())
    (copy / "secrets").symlink_to(tmp_path / "secrets-elsewhere")
    assert_refused(pacs(sqlite_env(tmp_path / "home"), "restore", str(copy)), "behind a link")
