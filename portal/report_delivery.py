"""Report SRs sent to the archive right after their signature is committed, off the request.

The radiologist's click commits the signature (the outbox row) and returns; a background
thread of the portal process then builds the SR from the evidence recorded at ingestion and
STOWs it, about a second later. The outbox row is the truth: whatever this thread could not
send (archive down, portal killed between commit and delivery) stays pending and the
`archive-reports` flow sends it. A document sent twice is stored once (same SOP Instance UID,
same content), so the two never make a duplicate.

The thread starts with the first signature and ends after `IDLE_SECONDS` without one.
"""

from __future__ import annotations

import logging
import queue
import threading

from flask import Flask

from portal.extensions import db
from portal.security import utc_now
from storage.archive import ArchiveClient
from storage.report_archive import try_send_report_document

ARCHIVE_TIMEOUT = 30.0  # seconds; a slower archive leaves the document to the outbox flow
IDLE_SECONDS = 10.0
events = logging.getLogger("pacs.events")  # `pacs up` prints these, one line each


class ReportDelivery:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.pending: queue.Queue[int] = queue.Queue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, document_id: int) -> None:
        """Send this committed document soon (call after the commit, never before)."""
        self.pending.put(document_id)
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self.run, name="pacs-report-delivery", daemon=True
                )
                self.thread.start()

    def run(self) -> None:
        while True:
            try:
                document_id = self.pending.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self.lock:
                    if self.pending.empty():
                        self.thread = None
                        return
                continue
            self.deliver(document_id)

    def deliver(self, document_id: int) -> None:
        """One attempt; its outcome (archived, or the error) is written on the outbox row."""
        settings = self.app.config["PACS_SETTINGS"]
        with self.app.app_context():
            try:
                with ArchiveClient.from_settings(settings, timeout=ARCHIVE_TIMEOUT) as client:
                    error = try_send_report_document(db.session, client, document_id, utc_now())
                db.session.commit()
            except Exception:  # the thread must outlive any one document; the outbox retries it
                db.session.rollback()
                self.app.logger.exception("report document %s not sent", document_id)
                return
        if error is not None:
            self.app.logger.warning("report document %s left to the outbox: %s", document_id, error)
        else:
            events.info("signed report %s archived as a DICOM SR", document_id)
