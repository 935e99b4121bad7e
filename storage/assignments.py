"""Assigning studies to radiologists and changing their priority."""

from __future__ import annotations

import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import Role
from core.records import Priority
from storage.accounts import find_user
from storage.models.accounts import User
from storage.models.studies import Study, StudyEvent


class AssignmentError(ValueError):
    """The change is not allowed or names something that does not exist."""


def find_listed_study(session: Session, study_uid: str) -> Study | None:
    return session.scalar(
        select(Study).where(Study.study_instance_uid == study_uid, Study.status != "removed")
    )


def assign_study(
    session: Session,
    study: Study,
    actor: User,
    assignee_email: str | None,
    now: datetime.datetime,
) -> None:
    """Radiologists take studies for themselves or give them back; admins assign anyone."""
    if assignee_email is None:
        if actor.role != Role.ADMIN and study.assignee_id not in (None, actor.id):
            raise AssignmentError("only an admin can take a study from another radiologist")
        if study.assignee_id is not None:
            study.events.append(StudyEvent(at=now, kind="released", user_email=actor.email))
        study.assignee_id = None
        return
    assignee = find_user(session, assignee_email)
    if assignee is None or not assignee.active or assignee.role != Role.RADIOLOGIST:
        raise AssignmentError(f"{assignee_email} is not an active radiologist")
    if actor.role != Role.ADMIN:
        if assignee.id != actor.id:
            raise AssignmentError("radiologists assign studies to themselves only")
        if study.assignee_id not in (None, actor.id):
            raise AssignmentError("the study is assigned to another radiologist")
    study.assignee_id = assignee.id
    study.events.append(
        StudyEvent(at=now, kind="assigned", user_email=actor.email, detail=assignee.email)
    )


def set_priority(
    study: Study, priority: str, actor: User, reason: str, now: datetime.datetime
) -> None:
    try:
        new = Priority(priority.upper()).value
    except ValueError:
        raise AssignmentError(
            f"unknown priority {priority!r}: choose {', '.join(p.value for p in Priority)}"
        ) from None
    detail = f"{study.priority} -> {new}: {reason}"
    study.priority = new
    study.events.append(
        StudyEvent(at=now, kind="priority", user_email=actor.email, detail=detail[:512])
    )
