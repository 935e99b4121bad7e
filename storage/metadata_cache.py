"""A folder of series metadata bodies (DICOM JSON, gzip) as the archive gave them to the
viewer, each under a key that names what it depends on (see portal/viewer/__init__.py).

Files are written whole (a temporary file, renamed when the body is complete), so a reader
never sees half a body; they hold patient data, so they are private to the platform's user
(0600). The folder is kept under a size cap, the least recently written files going first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

MAX_BYTES = 2 * 1024**3  # a 3,000-instance series is ~300 KB of gzip


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

    def write_through(self, owner: str, key: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass `chunks` on, keeping a copy that becomes the body under `key` once they have
        all gone through; a stream broken off (an archive or client gone) leaves nothing."""
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
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # the archive's connection, at once
            if not complete:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)

    def prune(self) -> None:
        """Remove the oldest bodies while the folder is over its cap."""
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
