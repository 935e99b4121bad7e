"""What the analytics pages need from the operational database: the warehouse holds no
patient names, so the roles allowed to see them get them from here."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models.studies import Study


def find_patients(session: Session, study_uids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Study Instance UID -> (patient name, patient ID)."""
    uids = list(set(study_uids))
    if not uids:
        return {}
    rows = session.execute(
        select(Study.study_instance_uid, Study.patient_name, Study.patient_id).where(
            Study.study_instance_uid.in_(uids)
        )
    )
    return {uid: (name, patient_id) for uid, name, patient_id in rows}
