"""Assigning studies to radiologists and changing their priority (rules: core/assignments.py)."""

from __future__ import annotations

import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.assignments import check_assignment, check_release, parse_priority
from core.records import StudyStatus
from core.study_events import StudyEventKind
from storage.accounts import find_user
from storage.models.accounts import User
from storage.models.studies import Study, StudyEvent


def find_listed_study(
    session: Session, study_uid: str, *, for_update: bool = False
) -> Study | None:
    """The study on the worklist. `for_update` before a read-modify-write of it (assignment,
    priority, its report): the row stays locked (PostgreSQL `FOR UPDATE`) until the
    transaction ends, so a concurrent writer waits and then reads what this one wrote, instead
    of both deciding on the same old values and one update being lost. SQLite has no row
    locks: its one writer at a time refuses a transaction whose reads went stale."""
    statement = select(Study).where(
        Study.study_instance_uid == study_uid, Study.status != StudyStatus.REMOVED
    )
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.scalar(statement)


def assign_study(
    session: Session,
    study: Study,
    actor: User,
    assignee_email: str | None,
    now: datetime.datetime,
) -> None:
    """Assign to `assignee_email`, or release with None (AssignmentError when not allowed)."""
    if assignee_email is None:
        check_release(actor.role, actor.id, study.assignee_id)
        if study.assignee_id is not None:
            study.events.append(
                StudyEvent(at=now, kind=StudyEventKind.RELEASED, user_email=actor.email)
            )
        study.assignee_id = None
        return
    assignee = find_user(session, assignee_email)
    check_assignment(
        actor.role,
        actor.id,
        study.assignee_id,
        new_email=assignee_email,
        new_id=assignee.id if assignee else None,
        new_role=assignee.role if assignee else None,
        new_active=bool(assignee and assignee.active),
    )
    study.assignee_id = assignee.id
    study.events.append(
        StudyEvent(
            at=now, kind=StudyEventKind.ASSIGNED, user_email=actor.email, detail=assignee.email
        )
    )


def set_priority(
    study: Study, priority: str, actor: User, reason: str, now: datetime.datetime
) -> None:
    new = parse_priority(priority).value
    detail = f"{study.priority} -> {new}: {reason}"
    study.priority = new
    study.events.append(
        StudyEvent(
            at=now, kind=StudyEventKind.PRIORITY, user_email=actor.email, detail=detail[:512]
        )
    )
