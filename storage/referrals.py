"""What a referring physician may see: their own patients' studies, once reported."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from core.records import StudyStatus
from storage.models.accounts import User
from storage.models.studies import Study

REPORTED = (StudyStatus.FINAL, StudyStatus.AMENDED)


def list_referred_studies(session: Session, referrer: User, *, limit: int = 200) -> list[Study]:
    """Studies naming this user as Referring Physician (DICOM name, any case), reported."""
    if not referrer.dicom_name.strip():
        return []
    return list(
        session.scalars(
            select(Study)
            .where(is_referred_by(referrer))
            .order_by(Study.received_at.desc())
            .limit(limit)
        )
    )


def find_referred_study_uids(session: Session, referrer: User, uids: Iterable[str]) -> set[str]:
    """Those of `uids` that this referrer may see (the images as well as the report)."""
    wanted = sorted(set(uids))
    if not referrer.dicom_name.strip() or not wanted:
        return set()
    found: set[str] = set()
    for start in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
        chunk = wanted[start : start + 500]
        found.update(
            session.scalars(
                select(Study.study_instance_uid).where(
                    Study.study_instance_uid.in_(chunk), is_referred_by(referrer)
                )
            )
        )
    return found


def is_referred_by(referrer: User) -> ColumnElement[bool]:
    return and_(
        func.lower(Study.referring_physician) == referrer.dicom_name.strip().lower(),
        Study.status.in_(REPORTED),
    )


def is_referred_to(study: Study, referrer: User) -> bool:
    """The study names this user as Referring Physician (DICOM name, any case)."""
    name = referrer.dicom_name.strip().lower()
    return bool(name) and study.referring_physician.strip().lower() == name
