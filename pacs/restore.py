"""`pacs restore PATH [--force]`: a backup made by `pacs backup` into an empty PACS_HOME.

Nothing is touched before the whole backup checks out (manifest, every file's SHA-256, the
same kind of databases as the target's settings). While it restores, `PACS_HOME/RESTORING`
exists: a restore that fails or is killed leaves it, `pacs up` refuses to serve such a home,
and only `pacs restore --force` (which empties it first) clears it.
"""

from __future__ import annotations

import datetime
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from config.settings import Settings, load_settings, write_private_file
from pacs import orthanc_server
from pacs.backup import (
    FILE_NAME,
    FORMAT,
    INSTANCES_DIR,
    MANIFEST,
    ORTHANC_ID,
    SECRETS_DIR,
    STORAGE_DIR,
    BackupError,
    copy_files,
    file_sha256,
    first_line,
    instance_path,
)
from pacs.db_commands import upgrade_schema
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.database_backup import (
    empty_postgresql,
    list_tables,
    restore_postgresql,
    sqlite_file,
    summarize_database,
)
from storage.studies import record_retry, write_change_cursor

MARKER = "RESTORING"
SQLITE_KEY = "sqlite"


@dataclass(frozen=True)
class RestoreSummary:
    studies: int
    instances: int
    users: int
    seconds: float


def check_not_restoring(settings: Settings) -> None:
    """Refuse to serve a home whose restore has not finished."""
    if (settings.home / MARKER).exists():
        raise BackupError(
            f"{settings.home} holds an unfinished restore: run `pacs restore PATH --force` again"
        )


def restore_backup(backup: Path, env: Mapping[str, str], *, force: bool) -> RestoreSummary:
    """Restore `backup` into the PACS_HOME that `env` names (empty, unless `force`)."""
    started = time.monotonic()
    manifest = read_manifest(backup)
    settings = load_settings(env)
    check_target(settings, manifest, backup, force=force)
    settings.home.mkdir(parents=True, exist_ok=True)
    write_private_file(settings.home / MARKER, f"{backup}\n")  # first: --force empties next
    try:
        empty_target(settings)
        copy_files(backup / SECRETS_DIR, settings.home / SECRETS_DIR)
        settings = load_settings(env)  # with the restored secrets
        restore_database(settings, backup, manifest["database"])
        restore_archive(settings, backup, manifest["archive"])
    except Exception as error:  # whatever stopped it, the home is marked and the user told
        raise BackupError(
            f"restore failed, {settings.home} is incomplete ({first_line(error)}): "
            "run `pacs restore PATH --force` again"
        ) from None
    (settings.home / MARKER).unlink()
    counts = manifest["archive"]["counts"]
    return RestoreSummary(
        studies=counts["studies"],
        instances=counts["instances"],
        users=manifest["database"]["tables"].get("users", {}).get("rows", 0),
        seconds=round(time.monotonic() - started, 2),
    )


def read_manifest(backup: Path) -> dict[str, Any]:
    """The backup's manifest, once it is well formed and every file it names is there with
    its checksum. Names in it are checked before any is used as a path."""
    try:
        manifest = json.loads((backup / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{backup} is not a backup made by `pacs backup` (no manifest)") from None
    except (OSError, ValueError) as error:
        raise BackupError(f"{backup}: the manifest cannot be read ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{backup}: the manifest is not of a format this release reads")
    try:
        expected = list_expected_files(manifest)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise BackupError(f"{backup}: the manifest is corrupt ({error!r} is wrong)") from None
    for name, digest in expected.items():
        path = backup / name
        if path.is_symlink() or not path.is_file() or file_sha256(path) != digest:
            raise BackupError(f"{backup} is damaged: {name} is missing or changed")
        if any((backup / folder).is_symlink() for folder in PurePosixPath(name).parents[:-1]):
            raise BackupError(f"{backup} is damaged: {name} is behind a link")
    return manifest


def list_expected_files(manifest: dict[str, Any]) -> dict[str, str]:
    """Every file of the backup with its SHA-256; raises on a malformed or hostile entry."""
    database, archive = manifest["database"], manifest["archive"]
    if database["backend"] not in (SQLITE_KEY, "postgresql"):
        raise ValueError(database["backend"])
    check_int(database["change_cursor"])
    for summary in database["tables"].values():
        check_int(summary["rows"])
    expected = {safe_name(database["file"]): check_digest(database["sha256"])}
    expected |= {
        f"{SECRETS_DIR}/{safe_name(name)}": check_digest(digest)
        for name, digest in manifest["secrets"].items()
    }
    for key in ("studies", "instances"):
        check_int(archive["counts"][key])
    if archive["index"] == SQLITE_KEY:
        for study_id, instances in archive["studies"].items():
            check_id(study_id)
            for instance_id, digest in instances.items():
                name = f"{INSTANCES_DIR}/{instance_path(check_id(instance_id))}"
                expected[name] = check_digest(digest)
        for study_id in archive["pending_studies"]:
            check_id(study_id)
    elif archive["index"] == "postgresql":
        expected[safe_name(archive["file"])] = check_digest(archive["sha256"])
        for name, digest in archive["files"].items():
            expected[f"{STORAGE_DIR}/{safe_name(name)}"] = check_digest(digest)
    else:
        raise ValueError(archive["index"])
    return expected


def safe_name(name: str) -> str:
    """A relative path inside the backup: plain components, never `..` or absolute."""
    parts = PurePosixPath(name).parts
    if not parts or not all(FILE_NAME.fullmatch(part) and part != ".." for part in parts):
        raise ValueError(name)
    return name


def check_id(value: str) -> str:
    if not isinstance(value, str) or not ORTHANC_ID.fullmatch(value):
        raise ValueError(value)
    return value


def check_digest(value: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
        raise ValueError(value)
    return value


def check_int(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(value)
    return value


def check_target(
    settings: Settings, manifest: dict[str, Any], backup: Path, *, force: bool
) -> None:
    """Refuse a target that is not the backup's kind, that is in use, or (unless `force`)
    that holds a site."""
    home = settings.home.resolve()
    if backup.resolve().is_relative_to(home) or home.is_relative_to(backup.resolve()):
        raise BackupError(f"the backup {backup} and PACS_HOME {home} must not contain each other")
    backend = SQLITE_KEY if sqlite_file(settings.database_url) else "postgresql"
    if manifest["database"]["backend"] != backend:
        raise BackupError(
            f"the backup holds a {manifest['database']['backend']} database but "
            f"PACS_DATABASE_URL is {backend}: restore into the same kind"
        )
    index = "postgresql" if settings.orthanc_database_url else SQLITE_KEY
    if manifest["archive"]["index"] != index:
        raise BackupError(
            f"the backup holds an archive indexed in {manifest['archive']['index']} but "
            f"this site's Orthanc uses {index} (PACS_ORTHANC_DATABASE_URL): "
            "restore into the same kind"
        )
    if orthanc_server.is_running(orthanc_server.OrthancPaths(settings.orthanc_dir)):
        raise BackupError(f"Orthanc is running on {home}: stop the platform first")
    leftovers = list_leftovers(settings)
    if leftovers and not force:
        raise BackupError(
            f"{home} is not empty ({', '.join(leftovers[:3])}): restore into an empty "
            "PACS_HOME, or add --force to replace what is there"
        )


def list_leftovers(settings: Settings) -> list[str]:
    """What the target already holds: files of the home (its generated secrets aside), a
    SQLite database elsewhere, tables in the PostgreSQL databases."""
    home = settings.home
    found = sorted(p.name for p in home.iterdir() if p.name != SECRETS_DIR) if home.is_dir() else []
    database = sqlite_file(settings.database_url)
    if database is not None and database.exists() and not database.is_relative_to(home):
        found.append(str(database))
    try:
        for url, what in (
            (None if database else settings.database_url, "the database"),
            (settings.orthanc_database_url or None, "Orthanc's database"),
        ):
            if url and list_tables(url):
                found.append(f"tables in {what}")
    except Exception as error:  # an unreachable server: say so, not a stack trace
        raise BackupError(f"cannot check the target database: {first_line(error)}") from None
    return found


def empty_target(settings: Settings) -> None:
    """Remove what the home (its restore marker aside) and the databases hold: nothing,
    unless --force was given."""
    for path in settings.home.iterdir():
        if path.name == MARKER:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    database = sqlite_file(settings.database_url)
    if database is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    for url in (None if database else settings.database_url, settings.orthanc_database_url):
        if url and list_tables(url):
            empty_postgresql(url)


def restore_database(settings: Settings, backup: Path, described: dict[str, Any]) -> None:
    """The operational database, checked row for row against the manifest, then upgraded
    (a backup of an older release)."""
    database = sqlite_file(settings.database_url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        partial = database.with_name(f".{database.name}.restoring")
        shutil.copyfile(backup / described["file"], partial)
        partial.rename(database)
    else:
        restore_postgresql(settings.database_url, backup / described["file"])
    check_rows(settings.database_url, described["tables"], "the database")
    upgrade_schema(settings)


def check_rows(url: str, expected: dict[str, Any], what: str) -> None:
    restored = {table: s.to_json() for table, s in summarize_database(url).items()}
    if restored != expected:
        differing = sorted(
            t for t in expected.keys() | restored.keys() if expected.get(t) != restored.get(t)
        )
        raise BackupError(
            f"{what} came back different from the manifest (tables {', '.join(differing[:5])})"
        )


def restore_archive(settings: Settings, backup: Path, described: dict[str, Any]) -> None:
    if described["index"] == "postgresql":
        restore_postgresql(settings.orthanc_database_url, backup / described["file"])
        check_rows(settings.orthanc_database_url, described["tables"], "Orthanc's index")
        copy_files(backup / STORAGE_DIR, settings.orthanc_dir / "storage", recursive=True)
        return
    process = orthanc_server.start_orthanc(settings)
    try:
        with ArchiveClient.from_settings(settings, timeout=120) as client:
            store_instances(client, backup / INSTANCES_DIR, described["studies"])
            last_change = client.get_last_change()
    finally:
        orthanc_server.stop_orthanc(settings)
        process.wait()
    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        # The rebuilt archive numbers its changes anew: the pipeline starts after them, and
        # retries the studies it had not seen whole when the backup was taken.
        write_change_cursor(session, last_change)
        for study_id in described["pending_studies"]:
            record_retry(session, study_id, "restored from a backup taken as it arrived", now)


def store_instances(
    client: ArchiveClient, folder: Path, studies: dict[str, dict[str, str]]
) -> None:
    """Store every backed-up file again; each must come back under its own id."""
    for study_id, instances in studies.items():
        for instance_id in instances:
            stored = client.upload_instance((folder / instance_path(instance_id)).read_bytes())
            if (stored.instance_id, stored.study_id) != (instance_id, study_id):
                raise BackupError(f"instance {instance_id} came back as {stored.instance_id}")
