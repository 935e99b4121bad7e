"""Critical results in the operational database: the flag, acknowledgements, telephone
communications, escalation of overdue ones and the webhook outbox.

The rules are core/critical_results.py's; this module loads rows and applies them in the
caller's transaction. Who is the referring physician is matched as for referrals (the
account's DICOM name against the study's Referring Physician, any case).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.accounts import Role
from core.critical_results import (
    LABELS,
    CriticalCategory,
    CriticalResultForbidden,
    compute_due_at,
    next_retry_delay,
)
from core.sr import person_name
from storage.accounts import write_audit
from storage.models.accounts import User
from storage.models.critical_results import (
    CriticalCommunication,
    CriticalNotification,
    CriticalResult,
)
from storage.models.reports import Report, ReportDocument
from storage.models.studies import Study

MAX_LISTED = 200


def flag_critical_result(
    session: Session,
    study: Study,
    document: ReportDocument,
    category: CriticalCategory,
    actor: User,
    limits: Mapping[str, int],
) -> CriticalResult | None:
    """Flag the report of this signature; None when it was flagged already (the first
    flag, its time limit and its recipients stand)."""
    report = document.report
    if find_critical_result(session, report) is not None:
        return None
    result = CriticalResult(
        study_id=study.id,
        report_id=report.id,
        category=category.value,
        flagged_by=actor.email,
        flagged_by_name=person_name(actor.display_name, actor.email),
        flagged_at=document.signed_at,
        document_sequence=document.sequence,
        due_at=compute_due_at(document.signed_at, category, dict(limits)),
        acknowledged_by="",
    )
    session.add(result)
    return result


def find_critical_result(session: Session, report: Report | None) -> CriticalResult | None:
    if report is None or report.id is None:
        return None
    return session.scalar(select(CriticalResult).where(CriticalResult.report_id == report.id))


def find_critical_result_by_id(session: Session, result_id: int) -> CriticalResult | None:
    return session.get(CriticalResult, result_id)


def is_referred_to_user(result: CriticalResult, user: User) -> bool:
    name = user.dicom_name.strip().lower()
    return bool(name) and result.study.referring_physician.strip().lower() == name


def may_see(result: CriticalResult, user: User, oncall: str) -> bool:
    """The referrer it names, the on-call contact once escalated, its radiologist, admins."""
    if user.role == Role.ADMIN or result.flagged_by == user.email:
        return True
    if result.escalated_at is not None and oncall and user.email == oncall:
        return True
    return user.role == Role.REFERRER and is_referred_to_user(result, user)


def acknowledge(
    session: Session, result: CriticalResult, user: User, now: datetime.datetime
) -> bool:
    """The referring physician (or, once escalated, the on-call contact) confirms receipt;
    False when it was acknowledged already (a second click changes nothing)."""
    if result.acknowledged_at is not None:
        return False
    result.acknowledged_at = now
    result.acknowledged_by = user.email
    return True


def check_may_acknowledge(result: CriticalResult, user: User, oncall: str) -> None:
    if user.role == Role.REFERRER and is_referred_to_user(result, user):
        return
    if result.escalated_at is not None and oncall and user.email == oncall:
        return
    raise CriticalResultForbidden(
        "only the referring physician (or the on-call contact, once escalated) acknowledges"
    )


def record_communication(
    result: CriticalResult,
    actor: User,
    recipient: str,
    communicated_at: datetime.datetime,
    read_back: bool,
    now: datetime.datetime,
) -> CriticalCommunication:
    """Document a telephone call; one with read-back confirmed is the receipt, and the
    result no longer escalates."""
    communication = CriticalCommunication(
        recipient=recipient,
        communicated_at=communicated_at,
        read_back=read_back,
        recorded_by=actor.email,
        recorded_by_name=person_name(actor.display_name, actor.email),
        recorded_at=now,
    )
    result.communications.append(communication)
    if read_back and result.acknowledged_at is None:
        result.acknowledged_at = communicated_at
        result.acknowledged_by = f"telephone: {recipient}"[:255]
    return communication


def check_recorder(result: CriticalResult, actor: User, study: Study) -> None:
    """The radiologist of the study (who flagged it, or to whom it is assigned)."""
    if actor.role != Role.RADIOLOGIST:
        raise CriticalResultForbidden("only radiologists record communications")
    if actor.email != result.flagged_by and study.assignee_id != actor.id:
        raise CriticalResultForbidden(
            "only the radiologist who flagged the result, or the study's, records its calls"
        )


def list_critical_results(
    session: Session, user: User, oncall: str, *, limit: int = MAX_LISTED
) -> list[CriticalResult]:
    """What this user must see, open ones first (then escalated, then by deadline)."""
    query = select(CriticalResult).join(Study, Study.id == CriticalResult.study_id)
    if user.role != Role.ADMIN:
        mine = [CriticalResult.flagged_by == user.email]
        if user.role == Role.REFERRER and user.dicom_name.strip():
            mine.append(func.lower(Study.referring_physician) == user.dicom_name.strip().lower())
        if oncall and user.email == oncall:
            mine.append(CriticalResult.escalated_at.is_not(None))
        query = query.where(or_(*mine))
    query = query.order_by(
        CriticalResult.acknowledged_at.is_not(None),
        CriticalResult.escalated_at.is_(None),
        CriticalResult.due_at,
    ).limit(limit)
    return list(session.scalars(query))


def count_open_for(session: Session, user: User, oncall: str) -> int:
    """Unacknowledged results waiting for this user (the navigation's badge)."""
    conditions = []
    if user.role == Role.REFERRER and user.dicom_name.strip():
        conditions.append(func.lower(Study.referring_physician) == user.dicom_name.strip().lower())
    if oncall and user.email == oncall:
        conditions.append(CriticalResult.escalated_at.is_not(None))
    if user.role == Role.ADMIN:
        conditions.append(CriticalResult.escalated_at.is_not(None))
    if not conditions:
        return 0
    query = (
        select(func.count())
        .select_from(CriticalResult)
        .join(Study, Study.id == CriticalResult.study_id)
        .where(CriticalResult.acknowledged_at.is_(None), or_(*conditions))
    )
    return session.scalar(query) or 0


# -- escalation and the webhook outbox ------------------------------------------------------


def escalate_overdue(
    session: Session, now: datetime.datetime, *, oncall: str, webhook: bool, limit: int = 100
) -> list[CriticalResult]:
    """Mark each result past its limit and unacknowledged as escalated (once), audit it, and
    queue its webhook message when a webhook is set. The caller commits."""
    due = list(
        session.scalars(
            select(CriticalResult)
            .where(
                CriticalResult.acknowledged_at.is_(None),
                CriticalResult.escalated_at.is_(None),
                CriticalResult.due_at <= now,
            )
            .order_by(CriticalResult.due_at)
            .limit(limit)
        )
    )
    for result in due:
        result.escalated_at = now
        write_audit(
            session,
            action="critical_result.escalate",
            outcome="success",
            now=now,
            email="system",
            object_type="critical_result",
            object_id=str(result.id),
            study_uid=result.study.study_instance_uid,
            detail=f"{result.category}, due {result.due_at.isoformat()}, on-call {oncall or '-'}",
        )
        if webhook:
            session.add(
                CriticalNotification(
                    result_id=result.id,
                    created_at=now,
                    payload=build_escalation_payload(result, oncall),
                    attempts=0,
                    next_attempt_at=now,
                    last_error="",
                )
            )
    return due


def build_escalation_payload(result: CriticalResult, oncall: str) -> dict[str, object]:
    """What the paging system gets: enough to act and find the result, no patient name."""
    study = result.study
    return {
        "event": "critical_result.escalated",
        "critical_result_id": result.id,
        "category": result.category,
        "category_label": LABELS[CriticalCategory(result.category)],
        "flagged_at": result.flagged_at.isoformat(),
        "due_at": result.due_at.isoformat(),
        "flagged_by": result.flagged_by,
        "study_instance_uid": study.study_instance_uid,
        "accession_number": study.accession_number,
        "patient_id": study.patient_id,
        "referring_physician": study.referring_physician,
        "oncall": oncall,
        "portal_path": "/critical-results",
    }


def list_due_notifications(
    session: Session, now: datetime.datetime, *, limit: int = 100
) -> list[int]:
    return list(
        session.scalars(
            select(CriticalNotification.id)
            .where(
                CriticalNotification.delivered_at.is_(None),
                CriticalNotification.next_attempt_at <= now,
            )
            .order_by(CriticalNotification.next_attempt_at)
            .limit(limit)
        )
    )


def load_notification(session: Session, notification_id: int) -> CriticalNotification:
    notification = session.get(CriticalNotification, notification_id)
    if notification is None:
        raise LookupError(f"no critical notification {notification_id}")
    return notification


def mark_notification_delivered(
    session: Session, notification: CriticalNotification, now: datetime.datetime
) -> None:
    notification.attempts += 1
    notification.delivered_at = now
    notification.last_error = ""
    write_audit(
        session,
        action="critical_result.webhook",
        outcome="success",
        now=now,
        email="system",
        object_type="critical_result",
        object_id=str(notification.result_id),
        detail=f"delivered after {notification.attempts} attempt(s)",
    )


def mark_notification_failed(
    session: Session, notification: CriticalNotification, error: str, now: datetime.datetime
) -> None:
    notification.attempts += 1
    notification.last_error = error[:1024]
    notification.next_attempt_at = now + next_retry_delay(notification.attempts)
    write_audit(
        session,
        action="critical_result.webhook",
        outcome="failure",
        now=now,
        email="system",
        object_type="critical_result",
        object_id=str(notification.result_id),
        detail=f"attempt {notification.attempts}: {error}"[:1024],
    )


# -- monitoring -------------------------------------------------------------------------------


@dataclass
class CriticalSummary:
    """The dashboards' figures over a period."""

    per_category: dict[str, int] = field(default_factory=dict)
    minutes_to_acknowledge: list[float] = field(default_factory=list)
    breached: list[CriticalResult] = field(default_factory=list)
    open: int = 0


def summarize_critical_results(
    session: Session, since: datetime.datetime, now: datetime.datetime
) -> CriticalSummary:
    summary = CriticalSummary(per_category={c.value: 0 for c in CriticalCategory})
    results = session.scalars(
        select(CriticalResult)
        .where(CriticalResult.flagged_at >= since)
        .order_by(CriticalResult.flagged_at.desc())
    )
    for result in results:
        summary.per_category[result.category] = summary.per_category.get(result.category, 0) + 1
        if result.acknowledged_at is None:
            summary.open += 1
        else:
            waited = result.acknowledged_at - result.flagged_at
            summary.minutes_to_acknowledge.append(max(0.0, waited.total_seconds() / 60))
        if (result.acknowledged_at or now) > result.due_at:
            summary.breached.append(result)
    return summary
