"""A patient's other studies, from the operational database (never a query to the archive)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.priors import MAX_PRIORS, PriorStudy, is_relevant
from core.records import StudyStatus
from core.reports import ReportStatus
from storage.models.accounts import User
from storage.models.reports import Report
from storage.models.studies import Study
from storage.referrals import is_referred_by

HIDDEN = (StudyStatus.REMOVED, StudyStatus.QUARANTINED)


def list_priors(
    session: Session, study: Study, *, referrer: User | None = None, limit: int = MAX_PRIORS
) -> list[PriorStudy]:
    """The patient's other studies (same Patient ID and issuer), newest first; for a referrer
    only those they may see. A study without a Patient ID has no priors: nothing identifies
    its patient."""
    if not study.patient_id.strip():
        return []
    query = (
        select(
            Study.study_instance_uid,
            Study.study_date,
            Study.modalities,
            Study.body_part,
            Study.description,
            Study.status,
            Report.status,
            Report.sections["impression"].as_string(),  # not the whole report's JSON
        )
        .outerjoin(Report, Report.study_id == Study.id)
        .where(
            Study.patient_id == study.patient_id,
            Study.issuer_of_patient_id == study.issuer_of_patient_id,
            Study.id != study.id,
            Study.status.not_in(HIDDEN),
        )
        .order_by(
            Study.study_date.desc().nulls_last(),
            Study.study_datetime.desc().nulls_last(),
            Study.id.desc(),
        )
        .limit(limit)
    )
    if referrer is not None:
        query = query.where(is_referred_by(referrer))
    return [
        PriorStudy(
            study_instance_uid=uid,
            study_date=date,
            modalities=modalities,
            body_part=body_part,
            description=description,
            status=status,
            impression=(impression or "") if report_status == ReportStatus.FINAL else "",
            relevant=is_relevant(study.modalities, study.body_part, modalities, body_part),
        )
        for uid, date, modalities, body_part, description, status, report_status, impression in (
            session.execute(query)
        )
    ]
