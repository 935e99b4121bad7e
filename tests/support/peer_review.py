"""Final reports written straight into a test database, for the peer review tests."""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import select

from core.reports import ReportStatus
from storage.models.accounts import User
from storage.models.reports import Report, ReportDocument
from storage.models.studies import Study


def add_final_report(session, study: Study, signer_email: str, signed_at: datetime.datetime):
    """`study` reported final by `signer_email` at `signed_at` (no SR is built)."""
    signer = session.scalar(select(User).where(User.email == signer_email))
    report = Report(
        study_id=study.id,
        key=uuid.uuid4().hex,
        status=ReportStatus.FINAL,
        version=3,
        sections={"findings": "Secret finding text", "impression": "Secret impression"},
        author_id=signer.id,
        created_at=signed_at,
        updated_at=signed_at,
        updated_by=signer_email,
    )
    session.add(report)
    session.flush()
    report.documents.append(
        ReportDocument(
            sequence=1,
            kind="final",
            sections=report.sections,
            signed_by=signer_email,
            signer_name="Doe^Jane",
            signed_at=signed_at,
            series_instance_uid=f"2.25.{uuid.uuid4().int}",
            sop_instance_uid=f"2.25.{uuid.uuid4().int}",
        )
    )
    study.status = "final"
    session.flush()
    return report
