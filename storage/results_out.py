"""The ORU^R01 outbox: each final report and addendum of an ordered study, for the hospital.

Like the SR outbox: a signed document gets its row (and its fixed control id) first, and is
delivered after, oldest first, until the hospital acknowledges it; an acknowledged row is
never sent again. A resend after a lost ACK carries the same MSH-10, so the receiver can
tell it from a new result.
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.hl7_messages import PatientIdentity, ResultReport, build_oru
from storage.models.orders import Order, ResultMessage
from storage.models.reports import Report, ReportDocument

RESULT_KINDS = ("final", "addendum")
SECTION_TITLES = {
    "clinical_information": "Clinical information",
    "comparison": "Comparison",
    "technique": "Technique",
    "findings": "Findings",
    "impression": "Impression",
}


def enqueue_results(session: Session, now: datetime.datetime) -> int:
    """Give each final report and addendum of an ordered study its outbox row."""
    rows = session.execute(
        select(ReportDocument.id, Order.id, Report.key)
        .join(Report, ReportDocument.report_id == Report.id)
        .join(Order, Order.study_id == Report.study_id)
        .outerjoin(ResultMessage, ResultMessage.report_document_id == ReportDocument.id)
        .where(ReportDocument.kind.in_(RESULT_KINDS), ResultMessage.id.is_(None))
        .order_by(ReportDocument.id)
    ).all()
    seen: set[int] = set()
    for document_id, order_id, key in rows:
        if document_id in seen:  # one result per document, even if two orders name the study
            continue
        seen.add(document_id)
        session.add(
            ResultMessage(
                report_document_id=document_id,
                order_id=order_id,
                control_id=f"R{document_id}-{key[:12]}",
                created_at=now,
            )
        )
    return len(seen)


def list_pending_results(session: Session, *, limit: int = 100) -> list[int]:
    return list(
        session.scalars(
            select(ResultMessage.id)
            .where(ResultMessage.sent_at.is_(None))
            .order_by(ResultMessage.id)
            .limit(limit)
        )
    )


def build_result_message(
    session: Session, result_id: int, *, timezone: str, now: datetime.datetime
) -> bytes:
    """The ORU^R01 of an outbox row, in UTF-8; times on the department's wall clock."""
    result = session.get(ResultMessage, result_id)
    if result is None:
        raise LookupError(f"no result message {result_id}")
    document = session.get(ReportDocument, result.report_document_id)
    order = result.order
    zone = ZoneInfo(timezone)
    if document.kind == "addendum":
        sections: tuple[tuple[str, str], ...] = (("Addendum", document.addendum_text),)
    else:
        sections = tuple(
            (SECTION_TITLES.get(name, name.replace("_", " ").capitalize()), text)
            for name, text in document.sections.items()
            if text.strip()
        )
    report = ResultReport(
        control_id=result.control_id,
        patient=PatientIdentity(
            patient_id=order.patient_id,
            issuer=order.patient_id_issuer,
            name=order.patient_name,
            birth_date=order.patient_birth_date,
            sex=order.patient_sex,
        ),
        placer_order_number=order.placer_order_number,
        filler_order_number=order.filler_order_number,
        accession_number=order.accession_number,
        procedure_code=order.procedure_code,
        procedure_text=order.procedure_text,
        procedure_scheme=order.procedure_scheme,
        study_instance_uid=document.report.study.study_instance_uid,
        kind=document.kind,
        signed_at=document.signed_at.astimezone(zone).replace(tzinfo=None),
        signer_name=document.signer_name,
        sections=sections,
    )
    local_now = now.astimezone(zone).replace(tzinfo=None)
    return build_oru(report, now=local_now).encode("utf-8")


def mark_result_sent(session: Session, result_id: int, now: datetime.datetime) -> None:
    result = session.get(ResultMessage, result_id)
    result.sent_at, result.attempts, result.last_error = now, result.attempts + 1, ""


def mark_result_failed(session: Session, result_id: int, error: str) -> None:
    result = session.get(ResultMessage, result_id)
    result.attempts += 1
    result.last_error = error[:2000]
