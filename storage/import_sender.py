"""Import files into the archive: walk files, folders, ZIP archives and DICOMDIR media,
then send every instance by REST `POST /instances` from a few threads at once.

REST rather than STOW-RS: it answers per file whether the instance was new or already
stored ("AlreadyStored"), which the summary needs and STOW's answer does not tell. STOW
batches sent faster on this Orthanc (`benchmarks/import.py --transports`: ~250 vs ~200
instances/s with 8 parallel REST requests, files prepared beforehand), but the import as
a whole, reading and checking every file, still outpaces storescu with REST. What each
file is, the ZIP safety rules and the summary model live in `core/import_rules.py`.

Nothing is dropped silently: every file read ends as one `FileResult`; when the archive
stops answering, the files not yet sent are reported as not sent.

Files and ZIP members are streamed: a file larger than the limit (PACS_IMPORT_MAX_MB) is
refused without being read, one that is not DICOM after its first 64 KiB without reading
the rest; only an instance on its way to the archive is held in memory, whole, since
Orthanc takes it in one request. The archive's own error text goes to the log, the
summary says what kind of failure it was.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from core.import_rules import (
    HEAD_BYTES,
    FileResult,
    ImportSummary,
    NotImportable,
    Outcome,
    PreparedInstance,
    Refusal,
    TreePlan,
    check_head,
    check_zip_archive,
    check_zip_member,
    dataset_offset,
    is_dicomdir_name,
    is_zip,
    plan_tree,
    prepare_instance,
    read_dicomdir_references,
)
from storage.archive import ArchiveClient, ArchiveError, ArchiveRejected, ArchiveUnavailable

DEFAULT_WORKERS = 8  # parallel REST uploads: 8 sent ~1.5x faster than 4 (benchmark)
DEFAULT_MAX_FILE_BYTES = 2048 * 1024**2  # PACS_IMPORT_MAX_MB's default
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A file to read and send: `name` is what the summary shows, `open` streams it."""

    name: str
    size: int
    open: Callable[[], IO[bytes]]


@dataclass
class Gathered:
    candidates: list[Candidate]
    results: list[FileResult]  # decided without sending: ignored, unsafe, missing, unreadable


def gather_paths(
    paths: Iterable[tuple[Path, str]], stack: ExitStack, *, max_bytes: int
) -> Gathered:
    """Candidates from (path, display name) pairs; open ZIP archives stay open on `stack`.

    A DICOMDIR (read whole to plan its media) larger than `max_bytes` is refused unread.
    """
    gathered = Gathered([], [])
    for path, name in paths:
        if path.is_dir():
            gather_folder(path, name, gathered, stack, max_bytes)
        elif path.is_file() and is_dicomdir_name(path.name):
            gather_folder(path.parent, str(Path(name).parent), gathered, stack, max_bytes)
        elif path.is_file():
            gather_file(path, name, gathered, stack, max_bytes)
        else:
            gathered.results.append(
                rejected(name, Refusal.UNREADABLE, "no such file or folder", size=0)
            )
    return gathered


def gather_file(
    path: Path, name: str, gathered: Gathered, stack: ExitStack, max_bytes: int
) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
        size = path.stat().st_size
    except OSError as error:
        gathered.results.append(rejected(name, Refusal.UNREADABLE, f"unreadable: {error}"))
        return
    if is_zip(head):
        gather_zip(path, name, gathered, stack, max_bytes)
    else:
        gathered.candidates.append(Candidate(name, size, lambda: path.open("rb")))


def gather_folder(
    folder: Path, name: str, gathered: Gathered, stack: ExitStack, max_bytes: int
) -> None:
    """Every file below `folder` (symbolic links to folders are not followed)."""
    names = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        relative = Path(root).relative_to(folder)
        names += [(relative / file).as_posix() for file in sorted(files)]
    dicomdirs = {}
    for member in names:
        if is_dicomdir_name(member):
            try:
                if (folder / member).stat().st_size > max_bytes:
                    raise too_large(max_bytes)
                dicomdirs[member] = read_dicomdir_references((folder / member).read_bytes())
            except NotImportable as error:
                refusal = error.refusal or Refusal.NOT_DICOM
                gathered.results.append(rejected(join_name(name, member), refusal, str(error)))
            except OSError as error:
                gathered.results.append(
                    rejected(join_name(name, member), Refusal.NOT_DICOM, str(error))
                )
    plan = plan_tree(names, dicomdirs)
    add_plan_results(plan, name, gathered)
    for member in plan.send:
        gather_file(folder / member, join_name(name, member), gathered, stack, max_bytes)


def gather_zip(path: Path, name: str, gathered: Gathered, stack: ExitStack, max_bytes: int) -> None:
    """The safe members of a ZIP archive; members are streamed, never extracted."""
    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
        infos = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        gathered.results.append(
            rejected(name, Refusal.UNREADABLE, f"not a readable ZIP archive: {error}")
        )
        return
    problem = check_zip_archive(infos, path.stat().st_size)
    if problem:
        gathered.results.append(
            rejected(name, Refusal.UNSAFE_ARCHIVE, f"archive refused: {problem}")
        )
        return
    safe = {}
    for info in infos:
        problem = check_zip_member(info)
        if info.filename in safe:
            problem = "a second member with the same name (the archive is inconsistent)"
        if problem:
            gathered.results.append(
                rejected(f"{name}:{info.filename}", Refusal.UNSAFE_ARCHIVE, f"refused: {problem}")
            )
        else:
            safe[info.filename] = info
    dicomdirs = {}
    for member, info in safe.items():
        if is_dicomdir_name(member):
            try:
                if info.file_size > max_bytes:
                    raise too_large(max_bytes)
                dicomdirs[member] = read_dicomdir_references(archive.read(info))
            except NotImportable as error:
                refusal = error.refusal or Refusal.NOT_DICOM
                gathered.results.append(rejected(f"{name}:{member}", refusal, str(error)))
            except (zipfile.BadZipFile, OSError) as error:
                gathered.results.append(rejected(f"{name}:{member}", Refusal.NOT_DICOM, str(error)))
    plan = plan_tree(safe, dicomdirs)
    add_plan_results(plan, name, gathered, separator=":")
    for member in plan.send:
        info = safe[member]
        gathered.candidates.append(
            Candidate(f"{name}:{member}", info.file_size, lambda info=info: archive.open(info))
        )


def too_large(max_bytes: int) -> NotImportable:
    return NotImportable(
        Refusal.TOO_LARGE,
        f"larger than the {max_bytes // 1024**2} MB allowed per file (PACS_IMPORT_MAX_MB): "
        "not read",
    )


def read_candidate(candidate: Candidate, max_bytes: int) -> bytes:
    """The file's bytes, streamed: refused unread when too large, after HEAD_BYTES when the
    head shows it is no instance (NotImportable), whole only when it may be one."""
    if candidate.size > max_bytes:
        raise too_large(max_bytes)
    with candidate.open() as stream:
        head = stream.read(HEAD_BYTES)
        if len(head) < HEAD_BYTES:
            return head
        check_head(head)
        rest = stream.read(max_bytes - len(head) + 1)  # a size that lied stops here
    if len(head) + len(rest) > max_bytes:
        raise too_large(max_bytes)
    return head + rest


def join_name(prefix: str, member: str, separator: str = "/") -> str:
    """How the summary names a file of a folder ("folder/a.dcm") or archive ("b.zip:a.dcm")."""
    return f"{prefix}{separator}{member}" if prefix else member


def add_plan_results(plan: TreePlan, prefix: str, gathered: Gathered, separator: str = "/") -> None:
    for member, why in plan.ignored:
        gathered.results.append(
            FileResult(
                name=join_name(prefix, member, separator), outcome=Outcome.IGNORED, reason=why
            )
        )
    for member, why in plan.missing:
        gathered.results.append(
            rejected(join_name(prefix, member, separator), Refusal.UNREADABLE, why)
        )


def rejected(name: str, refusal: Refusal, reason: str, *, size: int = 0) -> FileResult:
    return FileResult(
        name=name, outcome=Outcome.REJECTED, size=size, refusal=refusal, reason=reason
    )


class Sender:
    """Sends candidates from `workers` threads, one archive client (connection) each."""

    def __init__(
        self, make_client: Callable[[], ArchiveClient], *, workers: int, max_bytes: int
    ) -> None:
        self.make_client = make_client
        self.workers = workers
        self.max_bytes = max_bytes
        self.local = threading.local()
        self.clients: list[ArchiveClient] = []
        self.lock = threading.Lock()
        self.stopped: str | None = None  # why the rest is not sent

    def client(self) -> ArchiveClient:
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = self.make_client()
            with self.lock:
                self.clients.append(client)
        return client

    def send_all(
        self,
        candidates: list[Candidate],
        on_result: Callable[[FileResult], None] = lambda result: None,
    ) -> list[FileResult]:
        """One result per candidate, in their order; Ctrl-C stops sending but not reporting."""

        def run(candidate: Candidate) -> FileResult:
            result = self.import_one(candidate)
            on_result(result)
            return result

        with ThreadPoolExecutor(self.workers, thread_name_prefix="import") as pool:
            futures = [pool.submit(run, candidate) for candidate in candidates]
            try:
                return [future.result() for future in futures]
            except KeyboardInterrupt:
                self.stopped = "not sent: the import was interrupted"
                return [future.result() for future in futures]
            finally:
                for client in self.clients:
                    client.close()

    def import_one(self, candidate: Candidate) -> FileResult:
        name, size = candidate.name, candidate.size
        try:
            data = read_candidate(candidate, self.max_bytes)
            instance = prepare_instance(data)
        except NotImportable as error:
            if error.refusal is None:
                return FileResult(
                    name=name, outcome=Outcome.IGNORED, size=size, reason=error.reason
                )
            return rejected(name, error.refusal, error.reason, size=size)
        except (OSError, zipfile.BadZipFile, RuntimeError, EOFError) as error:
            return rejected(name, Refusal.UNREADABLE, f"unreadable: {error}", size=size)
        if self.stopped:
            return rejected(name, Refusal.NOT_SENT, self.stopped, size=size)
        result = FileResult(
            name=name,
            outcome=Outcome.STORED,
            size=len(data),
            sop_instance_uid=instance.sop_instance_uid,
            study_instance_uid=instance.study_instance_uid,
        )
        try:
            self.store(instance, result)
        except ArchiveError as error:
            log.warning("import of %s: %s", name, error)  # Orthanc's words, for the log only
            self.record_archive_error(result, error)
        return result

    def record_archive_error(self, result: FileResult, error: ArchiveError) -> None:
        result.outcome = Outcome.REJECTED
        if isinstance(error, ArchiveRejected):
            result.refusal = Refusal.ARCHIVE_REFUSED
            result.reason = "the archive refused this file (the details are in the log)"
        elif isinstance(error, ArchiveUnavailable) and isinstance(
            error.__cause__, requests.HTTPError
        ):
            result.refusal = Refusal.ARCHIVE_REFUSED  # a server error on this file only
            result.reason = "not sent: the archive failed on this file (details in the log)"
        else:  # down, or the credentials: nothing else will get through either
            result.refusal = Refusal.NOT_SENT
            result.reason = self.stopped = f"not sent: {error.public_message}"

    def store(self, instance: PreparedInstance, result: FileResult) -> None:
        client = self.client()
        stored = client.upload_instance(instance.part10)
        if stored.status != "AlreadyStored":
            return
        if same_content(client, stored.instance_id, instance):
            result.outcome = Outcome.ALREADY_STORED
            result.reason = "already in the archive with the same content: skipped"
        else:
            result.outcome, result.refusal = Outcome.REJECTED, Refusal.DIFFERENT_CONTENT
            result.reason = (
                "the archive already holds a different instance with this SOP Instance UID "
                "(kept; this file was not stored)"
            )


def same_content(client: ArchiveClient, instance_id: str, instance: PreparedInstance) -> bool:
    """The same file (MD5 of the stored attachment), else the same data set bytes."""
    if client.get_instance_md5(instance_id) == instance.file_md5:
        return True
    archived = client.get_instance_file(instance_id)
    try:
        offset = dataset_offset(archived)
    except NotImportable:
        return False
    return archived[offset:] == instance.part10[instance.dataset_offset :]


def import_paths(
    paths: Iterable[tuple[Path, str]],
    make_client: Callable[[], ArchiveClient],
    *,
    workers: int = DEFAULT_WORKERS,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    on_gathered: Callable[[Gathered], None] = lambda gathered: None,
    on_result: Callable[[FileResult], None] = lambda result: None,
) -> ImportSummary:
    """Import every file below `paths` ((path, display name) pairs) into the archive;
    files and ZIP members over `max_file_bytes` are refused unread."""
    started = time.monotonic()
    with ExitStack() as stack:
        gathered = gather_paths(paths, stack, max_bytes=max_file_bytes)
        on_gathered(gathered)
        sender = Sender(make_client, workers=workers, max_bytes=max_file_bytes)
        sent = sender.send_all(gathered.candidates, on_result)
    return ImportSummary(files=gathered.results + sent, elapsed=time.monotonic() - started)
