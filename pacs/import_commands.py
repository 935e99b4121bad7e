"""`pacs import PATH...`: files, folders, ZIP archives and DICOMDIR media into the archive."""

from __future__ import annotations

import datetime
import getpass
import json
import threading
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from config.settings import Settings
from core.import_rules import FileResult, ImportSummary, Outcome
from pacs.ingest_commands import CommandError
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.import_log import record_import
from storage.import_sender import Gathered, import_paths


class RateColumn(ProgressColumn):
    """Files and megabytes per second since the start."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed <= 0:
            return Text("")
        megabytes = task.fields.get("bytes", 0) / 1e6
        return Text(f"{task.completed / elapsed:.0f} files/s  {megabytes / elapsed:.1f} MB/s")


class ProgressBar:
    """A progress bar on stderr (only on a terminal); stdout keeps the summary."""

    def __init__(self, err: TextIO) -> None:
        self.progress = Progress(
            TextColumn("importing"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} files"),
            RateColumn(),
            console=Console(file=err),
            disable=not err.isatty(),
        )
        self.task = self.progress.add_task("import", total=None, bytes=0)
        self.bytes = 0
        self.lock = threading.Lock()

    def start(self, gathered: Gathered) -> None:
        self.progress.update(self.task, total=len(gathered.candidates))

    def advance(self, result: FileResult) -> None:
        with self.lock:
            self.bytes += result.size
            self.progress.update(self.task, advance=1, bytes=self.bytes)


def run_import(
    settings: Settings,
    paths: list[str],
    *,
    as_json: bool,
    workers: int,
    out: TextIO,
    err: TextIO,
) -> int:
    """Import; exit status 1 when a file was rejected (every file is in the summary)."""
    if workers < 1:
        raise CommandError("--workers must be at least 1")
    with ArchiveClient.from_settings(settings, timeout=10) as client:
        client.get_system()  # a clear error now rather than every file "not sent"
    bar = ProgressBar(err)
    with bar.progress:
        summary = import_paths(
            [(Path(path).expanduser(), path) for path in paths],
            lambda: ArchiveClient.from_settings(settings, timeout=300),
            workers=workers,
            max_file_bytes=settings.import_max_mb * 1024**2,
            on_gathered=bar.start,
            on_result=bar.advance,
        )
    with open_session(settings.database_url) as session:
        run = record_import(
            session,
            summary,
            now=datetime.datetime.now(datetime.UTC),
            source="cli",
            actor=f"cli:{getpass.getuser()}",
        )
        run_id = run.id
    if as_json:
        json.dump({"id": run_id, **summary.to_json()}, out, indent=2)
        out.write("\n")
    else:
        write_summary(summary, out)
    if summary.rejected:
        err.write(f"pacs: {len(summary.rejected)} files rejected (listed in the summary)\n")
        return 1
    return 0


def write_summary(summary: ImportSummary, out: TextIO) -> None:
    seconds = max(summary.elapsed, 1e-6)
    stored = summary.count(Outcome.STORED)
    out.write(
        f"import: {summary.describe()} in {summary.elapsed:.1f} s "
        f"({stored / seconds:.0f} files/s, {summary.stored_bytes / 1e6 / seconds:.1f} MB/s)\n"
    )
    for result in summary.files:
        if result.outcome in (Outcome.REJECTED, Outcome.IGNORED):
            out.write(f"  {result.outcome}: {result.name}: {result.reason}\n")
    for study_uid in summary.study_uids:
        out.write(f"  study {study_uid}\n")
