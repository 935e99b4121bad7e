"""Writing ingestion results into the operational database, one transaction per study."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from core.evidence import StudyHeader
from core.identity import (
    IDENTITY_FIELDS,
    REPORTED_STATUSES,
    IdentityChange,
    IdentityDecision,
    RecordedIdentity,
    accepted_identity,
    acknowledge,
)
from core.ingest import Assessment, RecordedStudy
from core.quarantine import (
    UNRESOLVED_STATES,
    IdentityDecisionError,
    QuarantineError,
    QuarantineState,
)
from core.records import Priority, SeriesRecord, StudyRecord, StudyStatus
from core.study_events import StudyEventKind
from core.validation import Finding
from storage.evidence import save_evidence
from storage.models.arrivals import StudyArrival
from storage.models.evidence import EvidenceHeader
from storage.models.pipeline import IngestRetry, PipelineState
from storage.models.quarantine import QuarantinedStudy
from storage.models.studies import Series, Study, StudyEvent
from storage.teaching import select_copy_orthanc_ids

CHANGE_CURSOR = "orthanc_changes_seq"


def save_assessment(
    session: Session, assessment: Assessment, now: datetime.datetime, *, complete: bool = True
) -> str:
    """Upsert the study (or its quarantine entry); returns the outcome's name.

    `complete` is False while the archive does not call the study stable yet: a new study is
    then listed as arriving (its images counted as they come), and its turnaround starts when
    it completes."""
    record = assessment.record
    study = session.scalar(select(Study).where(Study.orthanc_id == record.orthanc_id))
    entry = session.scalar(
        select(QuarantinedStudy).where(QuarantinedStudy.orthanc_id == record.orthanc_id)
    )
    if assessment.quarantined:
        # A reported study stays with its readers (and its recorded identity) until an
        # admin decides: the quarantine entry is the signal, not its disappearance.
        if study is not None and study.status not in REPORTED_STATUSES:
            study.status = StudyStatus.QUARANTINED
        save_quarantine_entry(session, entry, assessment, now)
        return "quarantined"
    if entry is not None and entry.state == QuarantineState.OPEN:
        entry.state, entry.resolved_at = QuarantineState.CLEARED, now
    arrival = session.get(StudyArrival, study.id) if study is not None else None
    outcome = "updated"
    if study is None:
        study = Study(status=StudyStatus.RECEIVED)
        session.add(study)
        outcome = "ingested" if complete else "arriving"
    elif study.status in (StudyStatus.QUARANTINED, StudyStatus.REMOVED):
        study.status = StudyStatus.RECEIVED
    columns = record.as_columns()
    if outcome == "updated" and arrival is None:
        # Turnaround counts from the study's first completion in the archive: images added
        # later (our own report SRs among them) must not move it.
        columns.pop("received_at")
    for name, value in columns.items():
        setattr(study, name, value)
    study.removed_at = None
    study.ingested_at = now
    study.warnings = [finding.as_dict() for finding in assessment.findings]
    merge_series(study, record.series)
    session.flush()  # a new study's id
    if outcome != "updated" or arrival is not None:
        outcome = record_arrival(session, study, arrival, complete, now)
    if assessment.header is not None:
        save_evidence(
            session,
            study.id,
            assessment.header,
            assessment.evidence,
            prune=assessment.evidence_complete,
        )
    return outcome


def find_listed_study(session: Session, orthanc_id: str) -> Study | None:
    return session.scalar(select(Study).where(Study.orthanc_id == orthanc_id))


def record_arrival(
    session: Session,
    study: Study,
    arrival: StudyArrival | None,
    complete: bool,
    now: datetime.datetime,
) -> str:
    """A new or arriving study: listed as arriving until complete, then received."""
    if not complete:
        if arrival is None:
            session.add(StudyArrival(study_id=study.id, listed_at=now))
        return "arriving"
    if arrival is not None:
        session.delete(arrival)
    study.events.append(StudyEvent(at=study.received_at, kind=StudyEventKind.RECEIVED))
    return "ingested"


def save_quarantine_entry(
    session: Session,
    entry: QuarantinedStudy | None,
    assessment: Assessment,
    now: datetime.datetime,
) -> None:
    record = assessment.record
    if entry is None:
        entry = QuarantinedStudy(orthanc_id=record.orthanc_id, quarantined_at=now)
        session.add(entry)
    # Released studies have their errors overridden; errors left cannot be released.
    entry.state, entry.resolved_at, entry.resolved_by = QuarantineState.OPEN, None, None
    entry.study_instance_uid = record.study_instance_uid[:255]
    entry.patient_id = record.patient_id[:255]
    entry.patient_name = record.patient_name[:324]
    entry.modalities = record.modalities[:128]
    entry.description = record.description[:256]
    entry.instance_count = record.instance_count
    entry.reasons = [finding.as_dict() for finding in assessment.findings]
    entry.identity_changes = [change.as_dict() for change in assessment.identity_changes]
    entry.checked_at = now


def merge_series(study: Study, records: tuple[SeriesRecord, ...]) -> None:
    """Update series in place by UID, add new ones, drop those no longer in the archive."""
    existing = {series.series_instance_uid: series for series in study.series}
    merged = []
    for record in records:
        series = existing.get(record.series_instance_uid) or Series(
            series_instance_uid=record.series_instance_uid
        )
        series.modality = record.modality
        series.series_number = record.series_number
        series.description = record.description
        series.body_part = record.body_part
        series.instance_count = record.instance_count
        merged.append(series)
    study.series = merged


def find_addable_study(session: Session, orthanc_id: str) -> Study | None:
    """The listed study that series read later may be added to without reading it whole:
    not quarantined, released or removed, its evidence header recorded."""
    study = session.scalar(select(Study).where(Study.orthanc_id == orthanc_id))
    if study is None or study.status in (StudyStatus.QUARANTINED, StudyStatus.REMOVED):
        return None
    entry_state = session.scalar(
        select(QuarantinedStudy.state).where(QuarantinedStudy.orthanc_id == orthanc_id)
    )
    if entry_state in UNRESOLVED_STATES or session.get(EvidenceHeader, study.id) is None:
        return None
    return study


def find_recorded_series(session: Session, orthanc_id: str) -> dict[str, int] | None:
    """Series UID -> instances of a study that can be added to (core/increments.py)."""
    study = find_addable_study(session, orthanc_id)
    if study is None:
        return None
    return dict(
        session.execute(
            select(Series.series_instance_uid, Series.instance_count).where(
                Series.study_id == study.id
            )
        ).all()
    )


def load_recorded_study(
    session: Session, orthanc_id: str, series_uids: frozenset[str]
) -> RecordedStudy | None:
    """The study as recorded, to add series to; None when it cannot be added to any more
    or its series are no longer `series_uids` (it changed since they were planned)."""
    study = find_addable_study(session, orthanc_id)
    if study is None or {s.series_instance_uid for s in study.series} != series_uids:
        return None
    columns = {name: getattr(study, name) for name in StudyRecord.__dataclass_fields__}
    columns["priority"] = Priority(study.priority)
    columns["series"] = tuple(
        SeriesRecord(
            series_instance_uid=s.series_instance_uid,
            modality=s.modality,
            series_number=s.series_number,
            description=s.description,
            body_part=s.body_part,
            instance_count=s.instance_count,
        )
        for s in study.series
    )
    header = session.get(EvidenceHeader, study.id)
    return RecordedStudy(
        record=StudyRecord(**columns),
        findings=tuple(Finding.from_dict(warning) for warning in study.warnings or ()),
        header=StudyHeader(**header.header),
    )


def load_recorded_identity(
    session: Session, orthanc_id: str, study_uid: str
) -> RecordedIdentity | None:
    """The listed study these instances belong to: by Orthanc id, else by Study UID (a
    changed Patient ID files the same study under another Orthanc id)."""
    study = session.scalar(select(Study).where(Study.orthanc_id == orthanc_id))
    if study is None and study_uid:
        study = session.scalar(select(Study).where(Study.study_instance_uid == study_uid))
    if study is None:
        return None
    return RecordedIdentity(
        status=study.status,
        values={f.name: getattr(study, f.name) for f in IDENTITY_FIELDS},
        acknowledged=study.identity_acknowledged or {},
    )


def is_new_study(session: Session, orthanc_id: str) -> bool:
    """Neither listed nor ever quarantined."""
    listed = session.scalar(select(Study.id).where(Study.orthanc_id == orthanc_id))
    held = session.scalar(
        select(QuarantinedStudy.id).where(QuarantinedStudy.orthanc_id == orthanc_id)
    )
    return listed is None and held is None


def is_released(session: Session, orthanc_id: str) -> bool:
    state = session.scalar(
        select(QuarantinedStudy.state).where(QuarantinedStudy.orthanc_id == orthanc_id)
    )
    return state == QuarantineState.RELEASED


def mark_study_removed(session: Session, orthanc_id: str, now: datetime.datetime) -> bool:
    """The archive no longer has the study: keep its row (and history), off the worklist."""
    study = session.scalar(select(Study).where(Study.orthanc_id == orthanc_id))
    entry = session.scalar(
        select(QuarantinedStudy).where(QuarantinedStudy.orthanc_id == orthanc_id)
    )
    if entry is not None and entry.state in UNRESOLVED_STATES:
        entry.state, entry.resolved_at = QuarantineState.DELETED, now
    if study is None or study.status == StudyStatus.REMOVED:
        return False
    study.status, study.removed_at = StudyStatus.REMOVED, now
    return True


def select_known_study_ids():
    """Orthanc ids the database accounts for: listed studies, unresolved quarantine and the
    teaching copies kept in the archive."""
    listed = select(Study.orthanc_id).where(Study.status != StudyStatus.REMOVED)
    held = select(QuarantinedStudy.orthanc_id).where(QuarantinedStudy.state.in_(UNRESOLVED_STATES))
    return union(listed, held, select_copy_orthanc_ids())


def list_known_study_ids(session: Session) -> set[str]:
    return set(session.scalars(select_known_study_ids()))


def list_recorded_study_ids(session: Session) -> set[str]:
    """Orthanc ids of every study row, removed ones included."""
    return set(session.scalars(select(Study.orthanc_id)))


def count_known_studies(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(select_known_study_ids().subquery()))


def read_change_cursor(session: Session) -> int:
    value = session.get(PipelineState, CHANGE_CURSOR)
    return int(value.value) if value else 0


def write_change_cursor(session: Session, seq: int) -> None:
    session.merge(PipelineState(key=CHANGE_CURSOR, value=str(seq)))


def record_retry(session: Session, orthanc_id: str, reason: str, now: datetime.datetime) -> None:
    retry = session.get(IngestRetry, orthanc_id)
    if retry is None:
        session.add(IngestRetry(orthanc_id=orthanc_id, reason=reason[:1024], failed_at=now))
    else:
        retry.reason, retry.failed_at, retry.attempts = reason[:1024], now, retry.attempts + 1


def list_retries(session: Session) -> list[str]:
    return list(session.scalars(select(IngestRetry.orthanc_id).order_by(IngestRetry.failed_at)))


def clear_retry(session: Session, orthanc_id: str) -> None:
    retry = session.get(IngestRetry, orthanc_id)
    if retry is not None:
        session.delete(retry)


@dataclass(frozen=True)
class PipelineCounts:
    studies_by_status: dict[str, int]
    open_quarantine: int
    change_cursor: int
    retries: int


def count_pipeline(session: Session) -> PipelineCounts:
    rows = session.execute(select(Study.status, func.count()).group_by(Study.status)).all()
    open_quarantine = session.scalar(
        select(func.count())
        .select_from(QuarantinedStudy)
        .where(QuarantinedStudy.state == QuarantineState.OPEN)
    )
    return PipelineCounts(
        studies_by_status={status: count for status, count in rows},
        open_quarantine=open_quarantine or 0,
        change_cursor=read_change_cursor(session),
        retries=session.scalar(select(func.count()).select_from(IngestRetry)) or 0,
    )


def list_quarantine(session: Session, *, state: str | None = QuarantineState.OPEN):
    query = select(QuarantinedStudy).order_by(QuarantinedStudy.quarantined_at.desc())
    if state is not None:
        query = query.where(QuarantinedStudy.state == state)
    return list(session.scalars(query))


def find_quarantine_entry(session: Session, key: str) -> QuarantinedStudy | None:
    """By Orthanc id or Study Instance UID, as an admin would name it."""
    return session.scalar(
        select(QuarantinedStudy).where(
            (QuarantinedStudy.orthanc_id == key) | (QuarantinedStudy.study_instance_uid == key)
        )
    )


@dataclass(frozen=True)
class Resolution:
    orthanc_id: str
    study_instance_uid: str
    detail: str  # the identity decision, for the audit trail


def resolve_quarantine(
    session: Session,
    key: str,
    state: str,
    by: str,
    now: datetime.datetime,
    identity: IdentityDecision | None = None,
) -> Resolution:
    """An admin released (re-validate and ingest, errors overridden) or deleted the study.

    A released study is also queued for the next reconciliation, so it is ingested even
    if no pipeline picks up the request at once. Releasing a reported study whose
    identity changed needs `identity`: keep the recorded identity or accept the new one.
    """
    entry = find_quarantine_entry(session, key)
    if entry is None or entry.state != QuarantineState.OPEN:
        raise QuarantineError(f"no open quarantine entry for {key}")
    detail = ""
    if state == QuarantineState.RELEASED:
        detail = decide_identity(session, entry, identity, by, now)
        record_retry(session, entry.orthanc_id, f"released by {by}", now)
    entry.state, entry.resolved_by, entry.resolved_at = state, by, now
    return Resolution(entry.orthanc_id, entry.study_instance_uid, detail)


def decide_identity(
    session: Session,
    entry: QuarantinedStudy,
    decision: IdentityDecision | None,
    by: str,
    now: datetime.datetime,
) -> str:
    """Apply the admin's decision on a reported study's identity change; what was decided."""
    changes = [IdentityChange(**change) for change in entry.identity_changes or []]
    if not changes:
        if decision is not None:
            raise IdentityDecisionError(f"{entry.orthanc_id} has no identity change to decide on")
        return ""
    described = "; ".join(change.describe() for change in changes)
    if decision is None:
        raise IdentityDecisionError(
            f"the identity of reported study {entry.study_instance_uid} changed ({described}): "
            "release it keeping the recorded identity or accepting the new one"
        )
    study = session.scalar(
        select(Study).where(Study.study_instance_uid == entry.study_instance_uid)
    )
    if study is None:
        raise IdentityDecisionError(f"study {entry.study_instance_uid} is no longer listed")
    if decision == IdentityDecision.ACCEPT:
        try:
            accepted = accepted_identity(changes)
        except ValueError as error:
            raise IdentityDecisionError(str(error)) from None
        for name, value in accepted.items():
            setattr(study, name, value)
        detail = f"accepted the new identity: {described}"
    else:
        detail = f"kept the recorded identity: {described}"
    study.identity_acknowledged = acknowledge(study.identity_acknowledged or {}, changes)
    study.events.append(
        StudyEvent(at=now, kind=f"identity_{decision}", user_email=by, detail=detail[:512])
    )
    return detail


def record_study_opened(
    session: Session, study_uid: str, user_email: str, now: datetime.datetime
) -> bool:
    """Note a radiologist's first opening of a study's images (turnaround's "first opened").

    Later openings by the same user add nothing: the audit trail keeps every one.
    """
    study = session.scalar(select(Study).where(Study.study_instance_uid == study_uid))
    if study is None:
        return False
    seen = session.scalar(
        select(StudyEvent.id).where(
            StudyEvent.study_id == study.id,
            StudyEvent.kind == StudyEventKind.OPENED,
            StudyEvent.user_email == user_email,
        )
    )
    if seen is not None:
        return False
    session.add(
        StudyEvent(study_id=study.id, at=now, kind=StudyEventKind.OPENED, user_email=user_email)
    )
    return True
