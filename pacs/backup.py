"""`pacs backup PATH`: one consistent, dated backup of a site while it runs and receives studies.

The order makes it consistent: the operational database first (one snapshot), the archive
after. Everything the database names was in the archive before the snapshot, and Orthanc's
files are write-once, so every study, report and SR the database knows is in the backup's
archive; what reached the archive after the snapshot is in the archive only, and the
pipeline ingests it after a restore as it would have (the restored change cursor, or a retry).

- Operational database: SQLite's online backup API, or `pg_dump -Fc` (one snapshot, which
  also gives the rows' counts and checksums of the manifest).
- Orthanc on its SQLite index: this Orthanc holds that file under an exclusive lock while it
  runs, so no consistent copy of it can be read; every instance is exported through Orthanc's
  REST API as the Part 10 file it stores (a restore stores them again, which rebuilds the same
  index: Orthanc's ids derive from the DICOM UIDs). Orthanc on PostgreSQL: `pg_dump` of its
  index, then its storage folder (a file is complete before the index names it).
- The secrets of `PACS_HOME/secrets/`, and `manifest.json`: counts and a SHA-256 per file.

Written under a hidden temporary name and renamed when complete. The warehouse is not in it:
the first refresh after a restore rebuilds it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings, write_private_file
from core.changes import plan_change_work
from storage.archive import ArchiveClient, ArchiveError, ArchiveNotFound
from storage.database_backup import (
    DatabaseBackupError,
    copy_sqlite,
    dump_postgresql,
    sqlalchemy_url,
    sqlite_file,
    summarize_database,
)
from storage.studies import CHANGE_CURSOR

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_COPY = "database.sqlite3"
POSTGRESQL_DUMP = "database.pgdump"
ORTHANC_DUMP = "archive/orthanc.pgdump"
INSTANCES_DIR = "archive/instances"
STORAGE_DIR = "archive/storage"
SECRETS_DIR = "secrets"
PAGE = 500
ORTHANC_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}")
FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class BackupError(RuntimeError):
    """The backup or restore cannot go on; the message says why (one line)."""


@dataclass(frozen=True)
class BackupSummary:
    folder: Path
    studies: int
    instances: int
    seconds: float


def write_backup(settings: Settings, parent: Path) -> BackupSummary:
    """Back the site up into a new dated folder under `parent`."""
    started = time.monotonic()
    stamp = datetime.datetime.now(datetime.UTC)
    target = parent / f"pacs-backup-{stamp:%Y%m%dT%H%M%SZ}"
    partial = parent / f".{target.name}.partial"
    if target.exists():
        raise BackupError(f"{target} already exists: wait a second and run it again")
    if parent.resolve().is_relative_to(settings.home.resolve()):
        raise BackupError(f"{parent} is inside PACS_HOME ({settings.home}): back up elsewhere")
    parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    try:
        database = back_up_database(settings, partial)
        archive = back_up_archive(settings, partial, database["change_cursor"])
        manifest = {
            "format": FORMAT,
            "created_at": stamp.isoformat(),
            "seconds": round(time.monotonic() - started, 2),
            "database": database,
            "archive": archive,
            "secrets": copy_files(settings.home / SECRETS_DIR, partial / SECRETS_DIR),
        }
        write_private_file(partial / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupSummary(
        target, archive["counts"]["studies"], archive["counts"]["instances"], manifest["seconds"]
    )


def back_up_database(settings: Settings, folder: Path) -> dict[str, Any]:
    """The operational database's snapshot and its description (schema, cursor, rows)."""
    try:
        source = sqlite_file(settings.database_url)
        if source is not None:
            copy_sqlite(source, folder / SQLITE_COPY)
            url = f"sqlite:///{folder / SQLITE_COPY}"
            cursor, schema = read_cursor_and_schema(url)
            tables = summarize_database(url)
            name = SQLITE_COPY
        else:
            # Read before the dump: the cursor only grows, so the dump's is at least this one.
            cursor, schema = read_cursor_and_schema(settings.database_url)
            tables = dump_postgresql(settings.database_url, folder / POSTGRESQL_DUMP)
            name = POSTGRESQL_DUMP
    except (DatabaseBackupError, SQLAlchemyError, sqlite3.Error) as error:
        raise BackupError(f"cannot copy the database: {first_line(error)}") from None
    return {
        "backend": "sqlite" if source is not None else "postgresql",
        "file": name,
        "sha256": file_sha256(folder / name),
        "schema": schema,
        "change_cursor": cursor,
        "tables": {table: summary.to_json() for table, summary in tables.items()},
    }


def read_cursor_and_schema(url: str) -> tuple[int, list[str]]:
    """The pipeline's `/changes` cursor and the Alembic revisions of the database at `url`."""
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as connection:
            cursor = connection.execute(
                text("SELECT value FROM pipeline_state WHERE key = :key"), {"key": CHANGE_CURSOR}
            ).scalar()
            schema = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return int(cursor or 0), sorted(schema)
    finally:
        engine.dispose()


def back_up_archive(settings: Settings, folder: Path, cursor: int) -> dict[str, Any]:
    if settings.orthanc_database_url:
        return back_up_orthanc_postgresql(settings, folder)
    try:
        with ArchiveClient.from_settings(settings, timeout=120) as client:
            studies = export_instances(client, folder / INSTANCES_DIR)
            pending = list_pending_studies(client, cursor, set(studies))
    except ArchiveError as error:
        raise BackupError(
            f"cannot read the archive ({error}): is it running? (`pacs orthanc start`)"
        ) from None
    return {
        "index": "sqlite",
        "counts": {
            "studies": len(studies),
            "instances": sum(len(instances) for instances in studies.values()),
        },
        "studies": studies,
        "pending_studies": pending,
    }


def export_instances(client: ArchiveClient, folder: Path) -> dict[str, dict[str, str]]:
    """Every instance of every study the archive lists now, as `<id>.dcm`; their SHA-256
    by instance, by study. A study deleted meanwhile is left out."""
    studies: dict[str, dict[str, str]] = {}
    since = 0
    while page := client.get_json("/studies", since=since, limit=PAGE):
        for study_id in page:
            try:
                instances = [item["ID"] for item in client.get_study_instances(study_id)]
                checksums = {}
                for instance_id in instances:
                    data = client.get_instance_file(instance_id, compressed=False)
                    path = folder / instance_path(instance_id)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                    checksums[instance_id] = hashlib.sha256(data).hexdigest()
            except ArchiveNotFound:
                continue
            studies[study_id] = checksums
        since += len(page)
    return studies


def list_pending_studies(client: ArchiveClient, cursor: int, backed_up: set[str]) -> list[str]:
    """Studies with changes after the database's cursor: the pipeline had not (or not for
    certain) seen them whole at the snapshot, so the restored site ingests them again."""
    pending: dict[str, None] = {}
    while True:
        page = client.get_changes(since=cursor, limit=PAGE)
        work = plan_change_work(page.changes)
        pending.update(dict.fromkeys(work.studies))
        for series_id in work.series:
            try:
                pending[client.get_json(f"/series/{series_id}")["ParentStudy"]] = None
            except ArchiveNotFound:
                continue
        cursor = page.last
        if page.done:
            return [study for study in pending if study in backed_up]


def back_up_orthanc_postgresql(settings: Settings, folder: Path) -> dict[str, Any]:
    """Orthanc's index (one snapshot), then its storage folder: every file the index names
    was complete before the index named it. Files of instances stored after the snapshot
    come along unnamed, and are ignored by the restored Orthanc."""
    (folder / ORTHANC_DUMP).parent.mkdir(mode=0o700)
    try:
        tables = dump_postgresql(settings.orthanc_database_url, folder / ORTHANC_DUMP)
    except (DatabaseBackupError, SQLAlchemyError) as error:
        raise BackupError(f"cannot copy Orthanc's index: {first_line(error)}") from None
    storage = settings.orthanc_dir / "storage"
    counts = {kind: count_orthanc_resources(settings, kind) for kind in ("studies", "instances")}
    files = copy_files(storage, folder / STORAGE_DIR, recursive=True)
    if counts["instances"] and not files:
        raise BackupError(
            f"Orthanc's index names {counts['instances']} instances but {storage} holds no "
            "file: run `pacs backup` where Orthanc keeps its storage folder"
        )
    return {
        "index": "postgresql",
        "counts": counts,
        "file": ORTHANC_DUMP,
        "sha256": file_sha256(folder / ORTHANC_DUMP),
        "tables": {table: summary.to_json() for table, summary in tables.items()},
        "files": files,
    }


def count_orthanc_resources(settings: Settings, kind: str) -> int:
    """How many studies/instances the dumped index holds (Orthanc's resource types 1 and 3)."""
    level = {"studies": 1, "instances": 3}[kind]
    engine = create_engine(sqlalchemy_url(settings.orthanc_database_url))
    try:
        with engine.connect() as connection:
            return connection.execute(
                text("SELECT count(*) FROM resources WHERE resourcetype = :level"),
                {"level": level},
            ).scalar_one()
    finally:
        engine.dispose()


def copy_files(source: Path, target: Path, *, recursive: bool = False) -> dict[str, str]:
    """Copy the files of `source` (of its subfolders too when `recursive`) into `target`,
    private; their SHA-256 by path relative to `source`."""
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    checksums = {}
    if not source.is_dir():
        return checksums
    for path in sorted(source.rglob("*") if recursive else source.glob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        relative = path.relative_to(source).as_posix()
        copy = target / relative
        copy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        copy.chmod(0o600)
        checksums[relative] = file_sha256(copy)
    return checksums


def first_line(error: Exception) -> str:
    """An error's first line (a database driver's messages run over several)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def instance_path(instance_id: str) -> str:
    return f"{instance_id[:2]}/{instance_id}.dcm"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
