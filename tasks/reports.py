"""Prefect task that empties the SR outbox: signed reports the archive has not yet acknowledged."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from config.settings import Settings
from storage.archive import ArchiveClient, ArchiveUnavailable
from storage.database import open_session
from storage.report_archive import try_send_report_document
from storage.reports import list_pending_documents
from tasks.retries import archive_task


@dataclass
class OutboxOutcome:
    sent: int = 0
    failed: dict[int, str] = field(default_factory=dict)  # document id -> last error


@archive_task
def send_pending_reports(settings: Settings, limit: int = 100) -> OutboxOutcome:
    """STOW each pending SR, one transaction a document. An unavailable archive fails (and
    retries) the task; a document the archive refuses keeps its error and waits."""
    outcome = OutboxOutcome()
    with open_session(settings.database_url) as session:
        pending = list_pending_documents(session, limit=limit)
    with ArchiveClient.from_settings(settings, timeout=30) as client:
        for document_id in pending:
            with open_session(settings.database_url) as session:
                now = datetime.datetime.now(datetime.UTC)
                error = try_send_report_document(session, client, document_id, now)
            if error is None:
                outcome.sent += 1
            elif isinstance(error, ArchiveUnavailable):
                raise error
            else:
                outcome.failed[document_id] = f"{type(error).__name__}: {error}"
    return outcome
