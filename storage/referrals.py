"""What a referring physician may see: their own patients' studies, once reported."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.records import StudyStatus
from storage.database import Study, User

REPORTED = (StudyStatus.FINAL, StudyStatus.AMENDED)


def list_referred_studies(session: Session, referrer: User, *, limit: int = 200) -> list[Study]:
    """Studies naming this user as Referring Physician (DICOM name, any case), reported."""
    if not referrer.dicom_name.strip():
        return []
    return list(
        session.scalars(
            select(Study)
            .where(
                func.lower(Study.referring_physician) == referrer.dicom_name.strip().lower(),
                Study.status.in_(REPORTED),
            )
            .order_by(Study.received_at.desc())
            .limit(limit)
        )
    )


def is_referred_to(study: Study, referrer: User) -> bool:
    """The study names this user as Referring Physician (DICOM name, any case)."""
    name = referrer.dicom_name.strip().lower()
    return bool(name) and study.referring_physician.strip().lower() == name
