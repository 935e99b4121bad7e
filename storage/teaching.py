"""Teaching cases in the operational database, and the making of their de-identified copy.

The copy reads the key series from the archive, de-identifies and verifies every instance
the way research exports do (`core.export_instances.deidentify_files`: Annex E, burned-in
annotation excluded, the leak scan), and stores what passed in the archive (or the research
Orthanc) under the case's own UIDs. Its UIDs derive from the case's secret salt, so making
the copy again (after a crash) replaces the same instances instead of adding others.
"""

from __future__ import annotations

import datetime
import secrets
from collections import Counter
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.deidentify import Deidentifier
from core.export_instances import deidentify_files
from core.teaching import TEACHING_OPTIONS, CaseState, CaseText, Location, TeachingError
from storage.archive import ArchiveClient
from storage.models.accounts import User
from storage.models.studies import Study
from storage.models.teaching import TeachingCase

STORE_BATCH = 50
FETCH_BATCH = 100


def deidentifier_of(case: TeachingCase) -> Deidentifier:
    return Deidentifier(salt=bytes.fromhex(case.salt), options=TEACHING_OPTIONS)


def create_case(
    session: Session,
    *,
    study: Study,
    series_uids: list[str],
    text: CaseText,
    author: User,
    location: str,
    now: datetime.datetime,
) -> TeachingCase:
    """The case, state `copying`: committed before the copy reaches the archive, so that
    ingestion knows the copy's study is no study to report."""
    salt = secrets.token_hex(32)
    modalities = {s.modality for s in study.series if s.series_instance_uid in series_uids}
    case = TeachingCase(
        source_study_id=study.id,
        source_series_uids=series_uids,
        salt=salt,
        copy_study_uid=Deidentifier(salt=bytes.fromhex(salt), options=TEACHING_OPTIONS).new_uid(
            study.study_instance_uid
        ),
        location=location,
        state=CaseState.COPYING,
        modality=",".join(sorted(m for m in modalities if m)) or study.modality,
        author_id=author.id,
        created_at=now,
        updated_at=now,
    )
    set_case_text(case, text, now)
    session.add(case)
    session.flush()
    return case


def set_case_text(case: TeachingCase, text: CaseText, now: datetime.datetime) -> None:
    case.title, case.diagnosis, case.findings = text.title, text.diagnosis, text.findings
    case.keywords, case.difficulty = text.keyword_text, text.difficulty
    case.updated_at = now


@dataclass(frozen=True)
class CopyOutcome:
    stored: int
    left_out: list[dict[str, object]]  # {"reason", "instances"}
    copy_orthanc_id: str


def copy_series(
    source: ArchiveClient, target: ArchiveClient, case: TeachingCase, study_uid: str
) -> CopyOutcome:
    """De-identify the case's key series from `source` into `target`."""
    deidentifier = deidentifier_of(case)
    instance_ids = []
    for series_uid in case.source_series_uids:
        for series_id in source.find(
            "Series", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}, expand=False
        ):
            instance_ids += [
                item["ID"] for item in source.get_json(f"/series/{series_id}/instances")
            ]
    stored, left_out = 0, Counter[str]()
    ids = iter(instance_ids)
    while batch := list(islice(ids, FETCH_BATCH)):
        files = [source.get_instance_file(instance_id) for instance_id in batch]
        results = deidentify_files(files, deidentifier, workers=1)
        left_out.update(r.reason for r in results if r.status != "exported")
        passed = iter([r.data for r in results if r.status == "exported"])
        while part := list(islice(passed, STORE_BATCH)):
            target.store_instances(part)
            stored += len(part)
    found = target.find_study_ids(case.copy_study_uid) if stored else []
    return CopyOutcome(
        stored=stored,
        left_out=[{"reason": reason, "instances": n} for reason, n in sorted(left_out.items())],
        copy_orthanc_id=found[0] if found else "",
    )


def finish_copy(
    session: Session, case: TeachingCase, outcome: CopyOutcome, now: datetime.datetime
) -> None:
    case.instances, case.left_out = outcome.stored, outcome.left_out
    case.copy_orthanc_id = outcome.copy_orthanc_id
    case.state = CaseState.READY if outcome.stored else CaseState.FAILED
    case.error = "" if outcome.stored else "no instance of the key series could be copied"
    case.updated_at = now


def fail_copy(session: Session, case: TeachingCase, error: str, now: datetime.datetime) -> None:
    case.state, case.error, case.updated_at = CaseState.FAILED, error[:1024], now


def get_case(session: Session, case_id: int) -> TeachingCase:
    case = session.get(TeachingCase, case_id)
    if case is None:
        raise TeachingError(f"no teaching case {case_id}", 404)
    return case


def search_cases(
    session: Session,
    *,
    text: str = "",
    keyword: str = "",
    modality: str = "",
    diagnosis: str = "",
    author_id: int | None = None,
    limit: int = 200,
) -> list[TeachingCase]:
    """Ready cases, newest first: `text` in title, diagnosis, findings or keywords;
    `keyword` one of its keywords; `diagnosis` contained; `modality` exact. An author also
    sees their own cases in any state; retired cases are left out."""
    visible = TeachingCase.state == CaseState.READY
    if author_id is not None:
        visible = or_(visible, TeachingCase.author_id == author_id)
    query = select(TeachingCase).where(visible, TeachingCase.retired_at.is_(None))
    if text:
        pattern = f"%{escape_like(text.lower())}%"
        query = query.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        TeachingCase.title,
                        TeachingCase.diagnosis,
                        TeachingCase.findings,
                        TeachingCase.keywords,
                    )
                )
            )
        )
    if keyword:
        needle = escape_like(" ".join(keyword.split()).lower())
        # Keywords are stored ", "-joined and lower case: match one whole.
        query = query.where(
            (", " + TeachingCase.keywords + ",").like(f"%, {needle},%", escape="\\")
        )
    if diagnosis:
        query = query.where(
            TeachingCase.diagnosis.ilike(f"%{escape_like(diagnosis)}%", escape="\\")
        )
    if modality:
        query = query.where(TeachingCase.modality.like(f"%{escape_like(modality.upper())}%"))
    return list(session.scalars(query.order_by(TeachingCase.id.desc()).limit(limit)))


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_viewable_copy(session: Session, study_uid: str) -> TeachingCase | None:
    """The ready, current case whose copy has this Study Instance UID."""
    return session.scalar(
        select(TeachingCase).where(
            TeachingCase.copy_study_uid == study_uid,
            TeachingCase.state == CaseState.READY,
            TeachingCase.retired_at.is_(None),
        )
    )


def list_viewable_copy_uids(session: Session, study_uids: list[str]) -> set[str]:
    return set(
        session.scalars(
            select(TeachingCase.copy_study_uid).where(
                TeachingCase.copy_study_uid.in_(study_uids[:1000]),
                TeachingCase.state == CaseState.READY,
                TeachingCase.retired_at.is_(None),
            )
        )
    )


def is_teaching_copy(session: Session, study_uid: str) -> bool:
    """Whether a study of the archive is a teaching copy (never a study to report)."""
    return (
        session.scalar(
            select(TeachingCase.id).where(TeachingCase.copy_study_uid == study_uid).limit(1)
        )
        is not None
    )


def select_copy_orthanc_ids():
    """Orthanc ids of the teaching copies kept in the archive itself."""
    return select(TeachingCase.copy_orthanc_id).where(
        TeachingCase.copy_orthanc_id != "", TeachingCase.location == Location.ARCHIVE
    )
