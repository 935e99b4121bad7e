"""What browsers are told when the archive fails: a plain sentence, never Orthanc's text.

Orthanc's error bodies and the archive's address belong to the server log (they can
name internal hosts, paths and patient data); the browser gets the error's kind.
"""

from __future__ import annotations

from flask import current_app, request

from storage.archive import ArchiveError


def report_archive_error(error: ArchiveError) -> str:
    """Log the archive's full error for this request and return what the browser may see."""
    current_app.logger.error("archive error on %s %s: %s", request.method, request.path, error)
    return f"{error.public_message} (the details are in the server log)"
