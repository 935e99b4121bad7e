"""Research exports in the operational database: cohorts, requests, progress, pseudonyms
(their states and transitions: core/exports.py)."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from core.cohorts import Cohort
from core.exports import (
    ExportNotFound,
    ExportState,
    state_after_decision,
    state_after_run,
    state_at_start,
)
from core.records import StudyStatus
from storage.models.exports import ExportPseudonym, ResearchExport
from storage.models.studies import Study


@dataclass(frozen=True)
class CohortSize:
    """What a researcher may see of a cohort: counts only."""

    studies: int
    patients: int
    instances: int
    modalities: dict[str, int]


@dataclass(frozen=True)
class CohortStudy:
    orthanc_id: str
    instance_count: int


def cohort_query(cohort: Cohort) -> Select[Any]:
    """Studies on the worklist (neither quarantined nor removed) matching every criterion."""
    query = select(Study).where(
        Study.removed_at.is_(None),
        Study.status.not_in((StudyStatus.QUARANTINED, StudyStatus.REMOVED)),
    )
    if cohort.modality:
        # `modalities` holds every modality of the study, backslash-separated.
        query = query.where(
            (Study.modality == cohort.modality)
            | Study.modalities.contains(cohort.modality, autoescape=True)
        )
    if cohort.date_from:
        query = query.where(Study.study_date >= cohort.date_from)
    if cohort.date_to:
        query = query.where(Study.study_date <= cohort.date_to)
    if cohort.body_part:
        query = query.where(func.upper(Study.body_part) == cohort.body_part)
    if cohort.description_contains:
        query = query.where(
            Study.description.icontains(cohort.description_contains, autoescape=True)
        )
    if cohort.has_final_report:
        query = query.where(Study.status.in_((StudyStatus.FINAL, StudyStatus.AMENDED)))
    if cohort.institution:
        query = query.where(Study.institution.icontains(cohort.institution, autoescape=True))
    if cohort.study_uids:
        query = query.where(Study.study_instance_uid.in_(cohort.study_uids))
    return query


def measure_cohort(session: Session, cohort: Cohort) -> CohortSize:
    subquery = cohort_query(cohort).subquery()
    studies, patients, instances = session.execute(
        select(
            func.count(),
            func.count(func.distinct(subquery.c.patient_id)),
            func.coalesce(func.sum(subquery.c.instance_count), 0),
        ).select_from(subquery)
    ).one()
    modalities = dict(
        session.execute(
            select(subquery.c.modality, func.count())
            .select_from(subquery)
            .group_by(subquery.c.modality)
            .order_by(subquery.c.modality)
        ).all()
    )
    return CohortSize(
        studies=studies, patients=patients, instances=int(instances), modalities=modalities
    )


def select_cohort(session: Session, cohort: Cohort) -> list[CohortStudy]:
    rows = session.scalars(cohort_query(cohort).order_by(Study.id)).all()
    return [CohortStudy(row.orthanc_id, row.instance_count) for row in rows]


def create_export(
    session: Session,
    *,
    cohort: Cohort,
    profile: str,
    purpose: str,
    requested_by: str,
    requester_id: int | None,
    now: datetime.datetime,
    state: str = ExportState.REQUESTED,
) -> ResearchExport:
    """A new request with its own secret salt (its pseudonyms and UIDs are its own)."""
    export = ResearchExport(
        requester_id=requester_id,
        requested_by=requested_by,
        purpose=purpose,
        cohort=cohort.to_json(),
        profile=profile,
        state=state,
        requested_at=now,
        salt=secrets.token_hex(32),
    )
    session.add(export)
    session.flush()
    return export


def get_export(session: Session, export_id: int, *, for_update: bool = False) -> ResearchExport:
    """The export; `for_update` locks its row (PostgreSQL) before its state is moved on, so
    two deciders or runners cannot both move it from the same state."""
    export = session.get(
        ResearchExport, export_id, with_for_update=for_update, populate_existing=for_update
    )
    if export is None:
        raise ExportNotFound(f"no export {export_id}")
    return export


def list_exports(session: Session, requester_id: int | None = None) -> list[ResearchExport]:
    """Newest first; a requester's own only when `requester_id` is given."""
    query = select(ResearchExport).order_by(ResearchExport.id.desc())
    if requester_id is not None:
        query = query.where(ResearchExport.requester_id == requester_id)
    return list(session.scalars(query))


def decide_export(
    session: Session,
    export_id: int,
    *,
    approve: bool,
    reason: str,
    by: str,
    now: datetime.datetime,
) -> ResearchExport:
    export = get_export(session, export_id, for_update=True)
    export.state = state_after_decision(export_id, export.state, approve=approve)
    export.reason, export.decided_by, export.decided_at = reason, by, now
    return export


def start_export(
    session: Session, export_id: int, total: int, now: datetime.datetime
) -> ResearchExport:
    """Running from scratch (a re-run starts its counts again, with the same salt)."""
    export = get_export(session, export_id, for_update=True)
    export.state = state_at_start(export_id, export.state)
    export.started_at, export.finished_at = now, None
    export.total_instances = total
    export.processed_instances = export.exported_instances = 0
    export.excluded_instances = export.withheld_instances = 0
    export.reason = ""
    return export


def add_progress(session: Session, export_id: int, counts: dict[str, int]) -> None:
    """Add one batch's counts (one UPDATE, safe with batches finishing together)."""
    session.execute(
        update(ResearchExport)
        .where(ResearchExport.id == export_id)
        .values(
            processed_instances=ResearchExport.processed_instances + sum(counts.values()),
            exported_instances=ResearchExport.exported_instances + counts.get("exported", 0),
            excluded_instances=ResearchExport.excluded_instances + counts.get("excluded", 0),
            withheld_instances=ResearchExport.withheld_instances + counts.get("withheld", 0),
        )
    )


def finish_export(
    session: Session,
    export_id: int,
    *,
    ok: bool,
    destination: str,
    report: dict[str, Any],
    reason: str,
    now: datetime.datetime,
) -> ResearchExport:
    export = get_export(session, export_id, for_update=True)
    export.state = state_after_run(ok)
    export.destination, export.report, export.reason = destination, report, reason
    export.finished_at = now
    return export


def remember_pseudonyms(
    session: Session, export_id: int, identities: Iterable[tuple[str, str, int]]
) -> None:
    """Store (patient key, pseudonym, shift) once per patient of the export."""
    known = set(
        session.scalars(
            select(ExportPseudonym.patient_key).where(ExportPseudonym.export_id == export_id)
        )
    )
    for key, pseudonym, shift in identities:
        if key not in known:
            known.add(key)
            session.add(
                ExportPseudonym(
                    export_id=export_id, patient_key=key, pseudonym=pseudonym, shift_days=shift
                )
            )


def list_pseudonyms(session: Session, export_id: int) -> list[ExportPseudonym]:
    return list(
        session.scalars(
            select(ExportPseudonym)
            .where(ExportPseudonym.export_id == export_id)
            .order_by(ExportPseudonym.pseudonym)
        )
    )
