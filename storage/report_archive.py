"""Sending signed reports to the archive as DICOM SR (STOW-RS), from the outbox.

A document is built when it is sent, from its row and the study's instances as the
archive holds them, so signing never waits for the archive and a resend rebuilds the
very same document (same SOP Instance UID, same content).
"""

from __future__ import annotations

import datetime

from sqlalchemy.orm import Session

from core.sr import build_report_sr, encode_part10, read_study_evidence
from storage.archive import ArchiveClient, ArchiveError, ArchiveRejected
from storage.reports import load_signed_report, mark_archived, mark_attempt_failed

FAILED_SOP_SEQUENCE = "00081198"


def send_report_document(
    session: Session, client: ArchiveClient, document_id: int, now: datetime.datetime
) -> str:
    """Build the document's SR, STOW it and mark it archived; returns its SOP Instance UID."""
    signed, orthanc_study_id = load_signed_report(session, document_id)
    header, evidence = read_study_evidence(client.get_study_instances_tags(orthanc_study_id))
    sr = build_report_sr(signed, header, evidence)
    answer = client.store_instances([encode_part10(sr)])
    if answer.get(FAILED_SOP_SEQUENCE, {}).get("Value"):
        raise ArchiveRejected(f"the archive refused SR {signed.sop_instance_uid}: {answer}")
    mark_archived(session, document_id, now)
    return signed.sop_instance_uid


def try_send_report_document(
    session: Session, client: ArchiveClient, document_id: int, now: datetime.datetime
) -> Exception | None:
    """One attempt: the error is kept on the document (it stays in the outbox) and returned."""
    try:
        send_report_document(session, client, document_id, now)
    except (ArchiveError, ValueError) as error:
        mark_attempt_failed(session, document_id, f"{type(error).__name__}: {error}")
        return error
    return None
