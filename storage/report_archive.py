"""Sending signed reports to the archive as DICOM SR (STOW-RS), from the outbox.

A document is built when it is sent, from its row and the study's evidence recorded at
ingestion (storage/evidence.py), so signing never waits for the archive and a resend
rebuilds the very same document (same SOP Instance UID, same content). Only a study
ingested before evidence was recorded has its instances read from the archive, once.
"""

from __future__ import annotations

import datetime

from sqlalchemy.orm import Session

from core.evidence import EvidenceInstance, StudyHeader, read_study_evidence
from core.sr import build_report_sr, encode_part10
from storage.archive import ArchiveClient, ArchiveError, ArchiveRejected
from storage.evidence import load_evidence, save_evidence
from storage.models.studies import Study
from storage.reports import load_signed_report, mark_archived, mark_attempt_failed

FAILED_SOP_SEQUENCE = "00081198"


def send_report_document(
    session: Session, client: ArchiveClient, document_id: int, now: datetime.datetime
) -> str:
    """Build the document's SR, STOW it and mark it archived; returns its SOP Instance UID."""
    signed, study = load_signed_report(session, document_id)
    header, evidence = load_evidence(session, study.id) or fetch_evidence(session, client, study)
    sr = build_report_sr(signed, header, evidence)
    answer = client.store_instances([encode_part10(sr)])
    if answer.get(FAILED_SOP_SEQUENCE, {}).get("Value"):
        raise ArchiveRejected(f"the archive refused SR {signed.sop_instance_uid}: {answer}")
    mark_archived(session, document_id, now)
    return signed.sop_instance_uid


def fetch_evidence(
    session: Session, client: ArchiveClient, study: Study
) -> tuple[StudyHeader, list[EvidenceInstance]]:
    """A study ingested before evidence was recorded: read it from the archive and keep it."""
    header, evidence = read_study_evidence(client.get_study_instances_tags(study.orthanc_id))
    save_evidence(session, study.id, header, evidence)
    return header, evidence


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
