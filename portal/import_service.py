"""File uploads into the archive, shared by the upload page and `POST /api/v1/imports`.

Routes marked `@accepts_uploads` get their own size limit (`PACS_IMPORT_MAX_MB`, not the
portal's 1 MiB) and their multipart file parts are streamed to disk under
`PACS_HOME/tmp/`, one open file at a time, under the relative path the browser gave
(so a dropped CD keeps its DICOMDIR layout); the folder is removed when the request
ends. Nothing of an upload is held in memory beyond one chunk.
"""

from __future__ import annotations

import datetime
import io
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from flask import current_app, request, url_for
from flask.wrappers import Request
from flask_login import current_user
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_input_stream

from config.settings import Settings
from core.accounts import Role
from core.import_rules import FileResult, Outcome, Refusal, unsafe_path_reason
from portal.extensions import db
from storage.archive import ArchiveClient
from storage.import_log import StudyPlace, locate_studies, record_import
from storage.import_sender import import_paths
from storage.models.imports import ImportRun

View = TypeVar("View", bound=Callable[..., Any])
MAX_UPLOAD_PARTS = 200_000
UPLOAD_FIELD = "files"
PEEK_BYTES = 4096  # enough for a multipart body's first part when it is a short field


class UploadError(ValueError):
    """The upload cannot be imported (nothing in it); the message says why."""


def accepts_uploads(view: View) -> View:
    """Mark a view whose requests may carry files up to PACS_IMPORT_MAX_MB."""
    view.pacs_uploads = True  # type: ignore[attr-defined]
    return view


def upload_limit(settings: Settings) -> int:
    return settings.import_max_mb * 1024 * 1024


IMPORT_REFUSAL = "importing is for admins (radiologists when PACS_IMPORT_RADIOLOGISTS=1)"


def may_import(user: Any) -> bool:
    """Admins always; radiologists when PACS_IMPORT_RADIOLOGISTS allows."""
    settings: Settings = current_app.config["PACS_SETTINGS"]
    return user.role == Role.ADMIN or (
        user.role == Role.RADIOLOGIST and settings.import_radiologists
    )


class DiskPart:
    """One uploaded file written to disk; the handle closes once the part is complete
    (werkzeug seeks to 0 then), so thousands of files never hold thousands of handles."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[bytes] | None = path.open("xb")
        self.size = 0

    def write(self, data: bytes) -> int:
        assert self.handle is not None, "the part is complete"
        self.size += len(data)
        return self.handle.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.close()
        return 0

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class DiscardedPart(DiskPart):
    """An uploaded file refused by its name: counted, never written."""

    def __init__(self) -> None:
        self.path = Path()
        self.handle = None
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


class UploadRequest(Request):
    """The portal's request class: upload routes stream their files to disk."""

    upload_dir: Path | None = None
    refused_parts: list[tuple[str, DiskPart]]

    @property
    def accepts_uploads(self) -> bool:
        view = current_app.view_functions.get(self.endpoint or "")
        return bool(getattr(view, "pacs_uploads", False))

    @property
    def max_content_length(self) -> int | None:
        if self.accepts_uploads:
            return upload_limit(current_app.config["PACS_SETTINGS"])
        return super().max_content_length

    @property
    def max_form_parts(self) -> int | None:
        return MAX_UPLOAD_PARTS if self.accepts_uploads else super().max_form_parts

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        if not self.accepts_uploads:
            return super()._get_file_stream(
                total_content_length, content_type, filename, content_length
            )
        if self.upload_dir is None:
            settings: Settings = current_app.config["PACS_SETTINGS"]
            parent = settings.home / "tmp"
            parent.mkdir(parents=True, exist_ok=True)
            self.upload_dir = Path(tempfile.mkdtemp(prefix="upload-", dir=parent))
            self.refused_parts = []
        name = clean_name(filename or "upload")
        if unsafe_path_reason(name):
            part: DiskPart = DiscardedPart()
            self.refused_parts.append((name, part))
        else:
            part = DiskPart(free_path(self.upload_dir, name))
        return part  # type: ignore[return-value]

    def peek_leading_field(self, name: str) -> str | None:
        """The value of field `name` when it is the body's first multipart part, read from
        its first PEEK_BYTES only; those bytes are put back for the form parser."""
        if self.mimetype != "multipart/form-data":
            return None
        boundary = parse_options_header(self.headers.get("Content-Type", ""))[1].get("boundary")
        if not boundary:
            return None
        stream = get_input_stream(self.environ, max_content_length=self.max_content_length)
        head = stream.read(PEEK_BYTES)
        self.environ["wsgi.input"] = io.BufferedReader(ReplayStream(head, stream))
        return read_leading_field(head, boundary.encode("latin-1"), name)

    def close(self) -> None:
        super().close()
        if self.upload_dir is not None:
            shutil.rmtree(self.upload_dir, ignore_errors=True)


class ReplayStream(io.RawIOBase):
    """Bytes already read from a stream, then the rest of the stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            size = min(len(buffer), len(self.head))
            buffer[:size], self.head = self.head[:size], self.head[size:]
            return size
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_leading_field(head: bytes, boundary: bytes, name: str) -> str | None:
    """A short text field's value when it is the first part of a multipart body."""
    match = re.match(
        rb"(?:\r\n)?--"  # werkzeug's test client sends an empty preamble first
        + re.escape(boundary)
        + rb"\r\ncontent-disposition: *form-data; *name=\""
        + re.escape(name.encode())
        + rb"\"\r\n\r\n([!-~]{1,512})\r\n--"
        + re.escape(boundary),
        head,
        re.IGNORECASE,
    )
    return match.group(1).decode("ascii") if match else None


def clean_name(filename: str) -> str:
    """The browser's relative path with empty and "." components dropped."""
    return "/".join(part for part in filename.split("/") if part not in ("", "."))


def free_path(folder: Path, name: str) -> Path:
    """`folder/name`, numbered when two uploaded files share a name."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    number = 1
    while path.exists():
        path = path.with_name(f"{Path(name).stem}~{number}{Path(name).suffix}")
        number += 1
    return path


def import_uploads(source: str) -> ImportRun:
    """Import the files of this request; the summary is kept and audited with the counts."""
    uploaded = request.files.getlist(UPLOAD_FIELD)
    if not uploaded or request.upload_dir is None:
        raise UploadError(f"the upload holds no files (send them as the {UPLOAD_FIELD!r} field)")
    settings: Settings = current_app.config["PACS_SETTINGS"]
    summary = import_paths(
        [(request.upload_dir, "")],
        lambda: ArchiveClient.from_settings(settings, timeout=300),
        max_file_bytes=upload_limit(settings),
    )
    refused = [
        FileResult(
            name=name,
            outcome=Outcome.REJECTED,
            size=part.size,
            refusal=Refusal.UNSAFE_ARCHIVE,
            reason=f"refused: {unsafe_path_reason(name)}",
        )
        for name, part in request.refused_parts
    ]
    summary.files = refused + summary.files
    run = record_import(
        db.session,
        summary,
        now=datetime.datetime.now(datetime.UTC),
        source=source,
        user=current_user.user,
        client_ip=request.remote_addr or "",
    )
    db.session.commit()
    return run


def find_visible_import(import_id: int) -> ImportRun | None:
    """The import if the current user may see it: admins all, others their own."""
    run = db.session.get(ImportRun, import_id)
    if run is None or (current_user.role != Role.ADMIN and run.user_id != current_user.user.id):
        return None
    return run


def describe_import(run: ImportRun) -> dict[str, Any]:
    """The summary with where each study is now (worklist, quarantine, not ingested yet)."""
    places = locate_studies(db.session, run.summary.get("studies", []))
    studies = []
    for uid, place in places.items():
        url = None
        if place == StudyPlace.WORKLIST:
            url = url_for("worklist.show_study", study_uid=uid)
        elif place == StudyPlace.QUARANTINE and current_user.role == Role.ADMIN:
            url = url_for("admin.show_quarantine")
        studies.append({"study_instance_uid": uid, "place": str(place), "url": url})
    return {
        "id": run.id,
        "at": run.at,
        "actor": run.actor,
        "source": run.source,
        "counts": run.counts,
        "elapsed_seconds": run.summary.get("elapsed_seconds", 0),
        "files": run.summary.get("files", []),
        "studies": studies,
    }
