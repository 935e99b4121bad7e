"""A folder of series metadata bodies (DICOM JSON, gzip) as the archive gave them to the
viewer, each under a key that names what it depends on (`series_metadata_key`).

Files are written whole (a temporary file, renamed when the body is complete), so a reader
never sees half a body; they hold patient data, so they are private to the platform's user
(0600). The folder is kept under a size cap, the least recently written files going first.

The body depends on the origin the browser used (the archive writes BulkDataURIs on it)
and the media types it asked for. The portal remembers the last two of those it served a
body for (`viewers.json`), so that the pipeline can prepare a new study's bodies before
anyone opens it (`prepare_series_metadata`): the archive reads every instance's file to
build them, a second for 3,000 instances, which would otherwise be in the radiologist's
first look at the study. That is as much archive work again as the ingestion's own read,
so it is done beside the ingestion, not in its way (`MetadataPreparer`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import urllib3

from config.settings import Settings
from storage.archive import ArchiveClient, ArchiveError

MAX_BYTES = 2 * 1024**3  # a 3,000-instance series is ~300 KB of gzip
VIEWERS_FILE = "viewers.json"
# The (origin, media types) pairs bodies are prepared for: a site's own, and one more (a
# second host name). Few, because each is a full read of the series by the archive; a
# pair is recorded only once the archive gave a body for it.
MAX_VIEWERS = 2
VIEWER_MAX_AGE = 7 * 24 * 3600.0  # seconds: a pair not served for a week is not prepared for
VIEWER_REFRESH = 3600.0  # seconds: how stale the newest pair's time may get before a rewrite
CHUNK_SIZE = 256 * 1024
PREPARE_TIMEOUT = (5.0, 300.0)  # connect, then between bytes: a busy archive, a big series
# Series waiting to be prepared, at most: past it (a catch-up of thousands of studies) a
# series is left to be built when first opened, as without preparation.
MAX_PENDING = 200
PARTIAL_MAX_AGE = 3600.0  # seconds: a body still being written is written to within this

log = logging.getLogger(__name__)


def series_metadata_key(series: str, count: int, forwarded: str, accept: str) -> str:
    """What a series' metadata body depends on: the series ("study/series" UIDs) and its
    number of instances (a grown series is never served stale), the origin the archive
    wrote BulkDataURIs for (the `Forwarded` header it was given) and the media types."""
    return f"{series}/{count}/{forwarded}/{accept}"


def is_keepable(upstream: urllib3.BaseHTTPResponse) -> bool:
    """A whole DICOM JSON body, gzip as the viewer is served it."""
    return (
        upstream.status == 200
        and upstream.headers.get("Content-Encoding") == "gzip"
        and upstream.headers.get("Content-Type", "").startswith("application/dicom+json")
    )


class MetadataCache:
    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def path_for(self, owner: str, key: str) -> Path:
        """Bodies are named by what they belong to (a series), then by their whole key."""
        return self.folder / f"{digest(owner)}-{digest(key)}.json.gz"

    def open(self, owner: str, key: str) -> BinaryIO | None:
        """The cached body under `key`, or None."""
        try:
            return self.path_for(owner, key).open("rb")
        except FileNotFoundError:
            return None

    def forget(self, owner: str) -> None:
        """Remove every body of `owner` (a series the archive no longer has)."""
        for path in self.folder.glob(f"{digest(owner)}-*.json.gz"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def has(self, owner: str, key: str) -> bool:
        return self.path_for(owner, key).exists()

    def write_through(
        self,
        owner: str,
        key: str,
        chunks: Iterable[bytes],
        viewer: tuple[str, str] | None = None,
    ) -> Iterator[bytes]:
        """Pass `chunks` on, keeping a copy that becomes the body under `key` once they have
        all gone through; a stream broken off (an archive or client gone) leaves nothing.
        `viewer` (forwarded origin, media types) is remembered once the body is kept."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".partial")  # mode 0600
        complete = False
        try:
            with os.fdopen(handle, "wb") as copy:
                for chunk in chunks:
                    copy.write(chunk)
                    yield chunk
            os.replace(temporary, self.path_for(owner, key))
            complete = True
            self.prune()
            if viewer is not None:
                with contextlib.suppress(OSError):  # the body is kept; this is a hint
                    self.remember_viewer(*viewer)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # the archive's connection, at once
            if not complete:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)

    def list_viewers(self, now: float | None = None) -> list[tuple[str, str]]:
        """The (forwarded origin, media types) pairs a body was last served for, newest
        first, leaving out those unused for VIEWER_MAX_AGE (a host name the site dropped)."""
        now = time.time() if now is None else now
        return [(f, a) for f, a, seen in self.read_viewers() if now - seen <= VIEWER_MAX_AGE]

    def read_viewers(self) -> list[tuple[str, str, float]]:
        try:
            entries = json.loads((self.folder / VIEWERS_FILE).read_text())
            return [(str(f), str(a), float(seen)) for f, a, seen in entries][:MAX_VIEWERS]
        except (OSError, ValueError, TypeError):
            return []  # none yet, or a damaged file: rewritten by the next body served

    def remember_viewer(self, forwarded: str, accept: str, now: float | None = None) -> None:
        """Put the pair first, with the time; rewritten at most every VIEWER_REFRESH while
        the pair stays first (it is called for every body served)."""
        now = time.time() if now is None else now
        pair = (forwarded, accept)
        entries = self.read_viewers()
        if entries and entries[0][:2] == pair and now - entries[0][2] < VIEWER_REFRESH:
            return
        entries = [(*pair, now)] + [entry for entry in entries if entry[:2] != pair]
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".partial")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(entries[:MAX_VIEWERS], out)
            os.replace(temporary, self.folder / VIEWERS_FILE)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def prune(self, now: float | None = None) -> None:
        """Remove the oldest bodies while the folder is over its cap, and what a process
        killed while writing left (a partial file untouched for PARTIAL_MAX_AGE)."""
        now = time.time() if now is None else now
        for path in self.folder.glob("*.partial"):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > PARTIAL_MAX_AGE:
                    path.unlink()
        entries = []
        for path in self.folder.glob("*.json.gz"):
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                return
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_series_metadata(
    client: ArchiveClient, cache: MetadataCache, study_uid: str, series_uid: str, count: int
) -> int:
    """Have the archive build the series' metadata for each remembered viewer whose body is
    not kept yet, and keep it; the number of bodies written. The request is the one the
    portal makes for the viewer (same path, media types, origin and gzip)."""
    series = f"{study_uid}/{series_uid}"
    written = 0
    for forwarded, accept in cache.list_viewers():
        key = series_metadata_key(series, count, forwarded, accept)
        if cache.has(series, key):
            continue
        headers = {"Accept-Encoding": "gzip", "Forwarded": forwarded}
        if accept:
            headers["Accept"] = accept
        path = f"studies/{study_uid}/series/{series_uid}/metadata"
        upstream = client.open_dicomweb(path, "", headers, timeout=PREPARE_TIMEOUT)
        try:
            if is_keepable(upstream):
                chunks = upstream.stream(CHUNK_SIZE, decode_content=False)
                for _ in cache.write_through(series, key, chunks):
                    pass
                written += 1
        finally:
            upstream.release_conn()
    return written


class MetadataPreparer:
    """Prepares series (`prepare_series_metadata`) one after another in a thread of its own,
    so that the ingestion that found them goes on at once. The thread runs while there is
    work; what is pending when the process ends is built when first opened instead."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = MetadataCache(settings.metadata_cache_dir)
        self.pending: queue.Queue[tuple[str, str, int]] = queue.Queue(MAX_PENDING)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, series: list[tuple[str, str, int]]) -> int:
        """Queue (study UID, series UID, instances) to be prepared; how many were taken."""
        taken = 0
        with self.lock:
            for item in series:
                try:
                    self.pending.put_nowait(item)
                    taken += 1
                except queue.Full:
                    break
            if taken and self.thread is None:
                self.thread = threading.Thread(target=self.run, name="viewer-metadata", daemon=True)
                self.thread.start()
        return taken

    def run(self) -> None:
        try:
            with ArchiveClient.from_settings(self.settings) as client:
                while (item := self.take()) is not None:
                    study_uid, series_uid, count = item
                    try:
                        prepare_series_metadata(client, self.cache, study_uid, series_uid, count)
                    except (ArchiveError, OSError, urllib3.exceptions.HTTPError) as error:
                        log.warning(
                            "series %s: viewer metadata not prepared (%s)", series_uid, error
                        )
        finally:  # ended by an error too: the next submit starts a thread again
            with self.lock:
                if self.thread is threading.current_thread():
                    self.thread = None

    def take(self) -> tuple[str, str, int] | None:
        """The next series, or None and this thread done (under the lock `submit` takes, so
        a series is never queued with no thread to take it)."""
        with self.lock:
            try:
                return self.pending.get_nowait()
            except queue.Empty:
                self.thread = None
                return None

    def wait(self, timeout: float) -> bool:
        """Whether everything queued was prepared within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.thread is None:
                    return True
            time.sleep(0.02)
        return False


_preparers: dict[Path, MetadataPreparer] = {}
_preparers_lock = threading.Lock()


def get_preparer(settings: Settings) -> MetadataPreparer:
    """This process's preparer for the site's cache folder (one thread a folder, however
    many flow runs find series)."""
    with _preparers_lock:
        preparer = _preparers.get(settings.metadata_cache_dir)
        if preparer is None or preparer.settings.orthanc_url != settings.orthanc_url:
            preparer = _preparers[settings.metadata_cache_dir] = MetadataPreparer(settings)
        return preparer
