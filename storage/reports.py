"""Reports in the operational database: drafts, signatures, addenda, templates, the SR outbox.

The decisions are core/reports.py's; this module loads rows, asks, and applies the
answer (report state, study status, a StudyEvent per transition) in the caller's
transaction.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.critical_results import CriticalCategory, TelephoneCommunication, describe_flag
from core.report_templates import TemplateSpec
from core.reports import (
    EVENT_KINDS,
    STUDY_STATUS_AFTER,
    ReportAction,
    ReportStatus,
    check_addendum,
    check_signable,
    check_version,
    clean_sections,
    decide_transition,
    document_uids,
    study_status_after_edit,
)
from core.sr import Addendum, CriticalContent, DocumentReference, SignedReport, person_name
from core.study_events import StudyEventKind
from storage.models.accounts import User
from storage.models.critical_results import CriticalResult
from storage.models.reports import Report, ReportDocument, ReportTemplate
from storage.models.studies import Series, Study, StudyEvent


def find_report(session: Session, study: Study, *, for_update: bool = False) -> Report | None:
    """The study's report; `for_update` locks its row (as `find_listed_study` does the
    study's, which writers lock first) before its version is checked and moved on."""
    statement = select(Report).where(Report.study_id == study.id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.scalar(statement)


def check_report_version(report: Report | None, expected: int | None, *, required: bool) -> None:
    check_version(
        report.version if report else None,
        expected,
        required=required,
        changed_by=report.updated_by if report else "",
    )


def decide(study: Study, report: Report | None, action: ReportAction, actor: User) -> ReportStatus:
    return decide_transition(
        ReportStatus(report.status) if report is not None else None,
        action,
        role=actor.role,
        is_assignee=study.assignee_id == actor.id,
        assigned_to_other=study.assignee_id not in (None, actor.id),
    )


def save_draft(
    session: Session,
    study: Study,
    actor: User,
    sections: Mapping[str, object],
    expected_version: int | None,
    now: datetime.datetime,
    *,
    template_key: str | None = None,
) -> Report:
    """Write the working text; the first save creates the report and takes the study."""
    report = find_report(session, study, for_update=True)
    decide(study, report, ReportAction.EDIT, actor)
    check_report_version(report, expected_version, required=True)
    cleaned = clean_sections(sections)
    if report is None:
        report = Report(
            study_id=study.id,
            key=uuid.uuid4().hex,
            status=ReportStatus.DRAFT,
            version=0,
            author_id=actor.id,
            created_at=now,
            updated_at=now,
        )
        session.add(report)
        study.events.append(
            StudyEvent(at=now, kind=StudyEventKind.REPORT_STARTED, user_email=actor.email)
        )
    if study.assignee_id is None:
        study.assignee_id = actor.id
        study.events.append(
            StudyEvent(
                at=now, kind=StudyEventKind.ASSIGNED, user_email=actor.email, detail=actor.email
            )
        )
    study.status = study_status_after_edit(study.status)
    report.sections = cleaned
    if template_key is not None:
        report.template_key = template_key[:64]
    touch(report, actor, now)
    return report


def touch(report: Report, actor: User, now: datetime.datetime) -> None:
    report.version += 1
    report.updated_at, report.updated_by = now, actor.email


def sign_report(
    session: Session,
    study: Study,
    actor: User,
    action: ReportAction,
    expected_version: int | None,
    now: datetime.datetime,
) -> ReportDocument:
    """Sign the saved text preliminary or final: a new document, queued for the archive."""
    report = find_report(session, study, for_update=True)
    after = decide(study, report, action, actor)
    check_report_version(report, expected_version, required=False)
    check_signable(report.sections)
    report.status = after
    return add_document(study, report, actor, action, now)


def add_addendum(
    session: Session,
    study: Study,
    actor: User,
    text: str,
    now: datetime.datetime,
) -> ReportDocument:
    """A correction to a final report: a new document that includes and references it."""
    report = find_report(session, study, for_update=True)
    decide(study, report, ReportAction.ADDENDUM, actor)
    return add_document(study, report, actor, ReportAction.ADDENDUM, now, check_addendum(text))


def add_document(
    study: Study,
    report: Report,
    actor: User,
    action: ReportAction,
    now: datetime.datetime,
    addendum_text: str = "",
) -> ReportDocument:
    sequence = len(report.documents) + 1
    series_uid, sop_uid = document_uids(report.key, sequence)
    document = ReportDocument(
        sequence=sequence,
        kind=action.value,
        sections=dict(report.sections),
        addendum_text=addendum_text,
        signed_by=actor.email,
        signer_name=person_name(actor.display_name, actor.email),
        signed_at=now,
        series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
        attempts=0,
        last_error="",
    )
    report.documents.append(document)
    touch(report, actor, now)
    study.status = STUDY_STATUS_AFTER[action]
    study.events.append(
        StudyEvent(
            at=now, kind=EVENT_KINDS[action], user_email=actor.email, detail=f"version {sequence}"
        )
    )
    return document


def find_document(report: Report, kind: str) -> ReportDocument | None:
    """The latest signed document of this kind."""
    matches = [d for d in report.documents if d.kind == kind]
    return matches[-1] if matches else None


def list_addenda(report: Report) -> list[ReportDocument]:
    return [d for d in report.documents if d.kind == ReportAction.ADDENDUM]


# -- the SR outbox ----------------------------------------------------------------------


def list_pending_documents(session: Session, *, limit: int = 100) -> list[int]:
    """Signed documents the archive has not acknowledged yet, oldest first."""
    return list(
        session.scalars(
            select(ReportDocument.id)
            .where(ReportDocument.archived_at.is_(None))
            .order_by(ReportDocument.signed_at)
            .limit(limit)
        )
    )


def count_pending_documents(session: Session) -> int:
    query = select(func.count()).where(ReportDocument.archived_at.is_(None))
    return session.scalar(query) or 0


def load_signed_report(session: Session, document_id: int) -> tuple[SignedReport, Study]:
    """What the document's SR says, and its study."""
    document = session.get(ReportDocument, document_id)
    if document is None:
        raise LookupError(f"no report document {document_id}")
    documents = document.report.documents
    earlier = [d for d in documents if d.sequence < document.sequence]
    addenda = [
        d for d in documents if d.kind == ReportAction.ADDENDUM and d.sequence <= document.sequence
    ]
    signed = SignedReport(
        kind=document.kind,
        sections=document.sections,
        author_name=document.signer_name,
        signed_at=document.signed_at,
        series_instance_uid=document.series_instance_uid,
        sop_instance_uid=document.sop_instance_uid,
        instance_number=document.sequence,
        addenda=[Addendum(a.addendum_text, a.signer_name, a.signed_at) for a in addenda],
        predecessor=DocumentReference(earlier[-1].series_instance_uid, earlier[-1].sop_instance_uid)
        if earlier
        else None,
        critical=load_critical_content(session, document),
    )
    return signed, document.report.study


def load_critical_content(session: Session, document: ReportDocument) -> CriticalContent | None:
    """The critical flag as of this signature, with the calls documented before it."""
    result = session.scalar(
        select(CriticalResult).where(CriticalResult.report_id == document.report_id)
    )
    if result is None or result.document_sequence > document.sequence:
        return None
    calls = [
        TelephoneCommunication(
            c.recipient, c.communicated_at, c.read_back, c.recorded_by_name
        ).describe()
        for c in result.communications
        if c.recorded_at <= document.signed_at
    ]
    flag = describe_flag(
        CriticalCategory(result.category), result.flagged_at, result.flagged_by_name
    )
    return CriticalContent(flag, calls)


def mark_archived(session: Session, document_id: int, now: datetime.datetime) -> None:
    document = session.get(ReportDocument, document_id)
    document.archived_at = now
    document.attempts += 1
    document.last_error = ""


def mark_attempt_failed(session: Session, document_id: int, error: str) -> None:
    document = session.get(ReportDocument, document_id)
    document.attempts += 1
    document.last_error = error[:1024]


def list_external_reports(session: Session, study: Study) -> list[Series]:
    """SR series of the study that none of our reports wrote: reports made elsewhere."""
    ours = set(
        session.scalars(
            select(ReportDocument.series_instance_uid)
            .join(Report, Report.id == ReportDocument.report_id)
            .where(Report.study_id == study.id)
        )
    )
    return [s for s in study.series if s.modality == "SR" and s.series_instance_uid not in ours]


# -- templates --------------------------------------------------------------------------


def list_templates(session: Session) -> list[ReportTemplate]:
    """Every template, by name (a new database gets the defaults from a data migration)."""
    return list(session.scalars(select(ReportTemplate).order_by(ReportTemplate.name)))


def find_template(session: Session, key: str) -> ReportTemplate | None:
    return session.scalar(select(ReportTemplate).where(ReportTemplate.key == key))


def as_spec(template: ReportTemplate) -> TemplateSpec:
    return TemplateSpec(
        template.key, template.name, template.modality, template.body_part, template.sections
    )


def update_template(
    session: Session,
    template: ReportTemplate,
    *,
    name: str,
    modality: str,
    body_part: str,
    sections: Mapping[str, object],
    actor: User,
    now: datetime.datetime,
) -> None:
    template.name = name.strip()[:128] or template.name
    template.modality = modality.strip().upper()[:16]
    template.body_part = body_part.strip().upper()[:64]
    template.sections = clean_sections(sections)
    template.updated_at, template.updated_by = now, actor.email


@dataclass(frozen=True)
class ReportView:
    """What a reader sees: the signed text (final, else the latest preliminary) and addenda;
    a report never signed shows its draft."""

    report: Report
    sections: dict[str, str]
    label: str  # FINAL, PRELIMINARY, DRAFT
    signed: ReportDocument | None
    preliminary: ReportDocument | None
    addenda: list[ReportDocument]

    @property
    def archived(self) -> bool:
        return all(d.archived_at is not None for d in self.report.documents)


def view_report(report: Report) -> ReportView:
    final = find_document(report, ReportAction.FINAL)
    preliminary = find_document(report, ReportAction.PRELIMINARY)
    signed = final or preliminary
    return ReportView(
        report=report,
        sections=signed.sections if signed else report.sections,
        label=(signed.kind if signed else ReportStatus.DRAFT).upper(),
        signed=signed,
        preliminary=preliminary,
        addenda=list_addenda(report),
    )
