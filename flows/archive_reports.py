"""Flow `archive_reports`: send the signed reports still in the outbox to the archive as SR."""

from __future__ import annotations

from prefect import flow, get_run_logger

from config.settings import load_settings
from tasks.reports import OutboxOutcome, send_pending_reports


@flow(name="archive-reports")
def archive_reports() -> OutboxOutcome:
    """Every pending SR, oldest first; the portal already tried each once when it was signed."""
    outcome = send_pending_reports(load_settings())
    logger = get_run_logger()
    if outcome.sent:
        logger.info(f"{outcome.sent} report documents archived")
    for document_id, error in outcome.failed.items():
        logger.warning(f"report document {document_id} not archived: {error}")
    return outcome
