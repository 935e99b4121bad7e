"""Imports in the operational database: their summaries and where their studies went."""

from __future__ import annotations

import datetime
import enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.import_rules import ImportSummary
from core.quarantine import QuarantineState
from core.records import StudyStatus
from storage.accounts import write_audit
from storage.models.accounts import User
from storage.models.imports import ImportRun
from storage.models.quarantine import QuarantinedStudy
from storage.models.studies import Study


class StudyPlace(enum.StrEnum):
    """Where an imported study is now, as the summary links to it."""

    WORKLIST = "worklist"
    QUARANTINE = "quarantine"
    PENDING = "pending"  # not ingested yet (the archive waits for the study to settle)


def record_import(
    session: Session,
    summary: ImportSummary,
    *,
    now: datetime.datetime,
    source: str,
    user: User | None = None,
    actor: str = "",
    client_ip: str = "",
) -> ImportRun:
    """Keep the summary and write the audit event with the counts."""
    run = ImportRun(
        at=now,
        user_id=user.id if user else None,
        actor=user.email if user else actor,
        source=source,
        counts=summary.counts,
        summary=summary.to_json(),
    )
    session.add(run)
    session.flush()
    write_audit(
        session,
        action="import",
        outcome="error" if summary.rejected else "success",
        now=now,
        user=user,
        email=actor,
        client_ip=client_ip,
        object_type="import",
        object_id=str(run.id),
        detail=f"{source}: {summary.describe()}; studies: {', '.join(summary.study_uids)}",
    )
    return run


def locate_studies(session: Session, study_uids: list[str]) -> dict[str, StudyPlace]:
    """Worklist, quarantine or not ingested yet, for each Study Instance UID."""
    places = dict.fromkeys(study_uids, StudyPlace.PENDING)
    if not study_uids:
        return places
    for uid, status in session.execute(
        select(Study.study_instance_uid, Study.status).where(
            Study.study_instance_uid.in_(study_uids)
        )
    ):
        if status == StudyStatus.QUARANTINED:
            places[uid] = StudyPlace.QUARANTINE
        elif status != StudyStatus.REMOVED:
            places[uid] = StudyPlace.WORKLIST
    for uid in session.scalars(
        select(QuarantinedStudy.study_instance_uid).where(
            QuarantinedStudy.study_instance_uid.in_(study_uids),
            QuarantinedStudy.state == QuarantineState.OPEN,
        )
    ):
        places[uid] = StudyPlace.QUARANTINE
    return places
