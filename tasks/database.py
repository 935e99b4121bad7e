"""Prefect tasks that write the operational database, one transaction per study."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from config.settings import Settings
from core import tags as tg
from core.ingest import assess_study
from core.records import ArchivedStudy, pick_common
from core.validation import ValidationPolicy
from storage.database import open_session
from storage.orders import save_study_with_order
from storage.studies import (
    clear_retry,
    count_known_studies,
    find_recorded_series,
    is_new_study,
    is_released,
    list_known_study_ids,
    list_retries,
    load_recorded_identity,
    load_recorded_study,
    mark_study_removed,
    read_change_cursor,
    record_retry,
    write_change_cursor,
)
from storage.teaching import is_teaching_copy
from tasks.retries import database_task, once_task


@dataclass(frozen=True)
class StudyOutcome:
    orthanc_id: str
    study_instance_uid: str
    outcome: str  # ingested, arriving, updated, quarantined, removed, pending, teaching
    instances: int
    findings: tuple[str, ...]


def make_policy(settings: Settings) -> ValidationPolicy:
    if settings.allowed_modalities is None:
        return ValidationPolicy()
    return ValidationPolicy(allowed_modalities=settings.allowed_modalities)


@dataclass(frozen=True)
class RecordedStudies:
    outcomes: list[StudyOutcome]
    failed: dict[str, str]  # Orthanc id -> why it could not be recorded


@database_task
def record_studies(settings: Settings, studies: list[ArchivedStudy]) -> RecordedStudies:
    """Validate each study and upsert it, or its quarantine entry, one transaction a study."""
    policy = make_policy(settings)
    recorded = RecordedStudies(outcomes=[], failed={})
    for study in studies:
        try:
            recorded.outcomes.append(record_study(settings, study, policy))
        except Exception as error:  # one study's failure must not lose the batch's others
            recorded.failed[study.orthanc_id] = f"{type(error).__name__}: {error}"
    return recorded


class StudyChanged(RuntimeError):
    """The study's recorded series changed between planning what to read and recording."""


def record_study(
    settings: Settings, study: ArchivedStudy, policy: ValidationPolicy
) -> StudyOutcome:
    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        base = None
        if study.kept_series:
            base = load_recorded_study(session, study.orthanc_id, study.kept_series)
            if base is None:
                raise StudyChanged("its recorded series changed while it was read; retried")
        released = is_released(session, study.orthanc_id)
        study_uid = (
            base.record.study_instance_uid
            if base is not None
            else pick_common(study.instances, tg.STUDY_INSTANCE_UID)
        )
        if study_uid and is_teaching_copy(session, study_uid):
            # A de-identified copy made for the teaching collection: nothing to report.
            clear_retry(session, study.orthanc_id)
            return StudyOutcome(study.orthanc_id, study_uid, "teaching", len(study.instances), ())
        recorded = load_recorded_identity(session, study.orthanc_id, study_uid)
        assessment = assess_study(study, policy, released=released, recorded=recorded, base=base)
        outcome = save_study_with_order(
            session, assessment, now, released=released, complete=study.is_stable
        )
        clear_retry(session, study.orthanc_id)
    return StudyOutcome(
        orthanc_id=study.orthanc_id,
        study_instance_uid=assessment.record.study_instance_uid,
        outcome=outcome,
        instances=len(study.instances),
        findings=tuple(finding.code for finding in assessment.findings),
    )


@once_task
def load_recorded_series(settings: Settings, orthanc_ids: list[str]) -> dict[str, dict[str, int]]:
    """Each study's recorded series (UID -> instances), for those that can be added to."""
    with open_session(settings.database_url) as session:
        found = {i: find_recorded_series(session, i) for i in orthanc_ids}
    return {orthanc_id: series for orthanc_id, series in found.items() if series is not None}


@once_task
def select_new_studies(settings: Settings, orthanc_ids: list[str]) -> list[str]:
    with open_session(settings.database_url) as session:
        return [i for i in orthanc_ids if is_new_study(session, i)]


@database_task
def record_removed_studies(settings: Settings, orthanc_ids: list[str]) -> int:
    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        for orthanc_id in orthanc_ids:
            clear_retry(session, orthanc_id)
        return sum(mark_study_removed(session, orthanc_id, now) for orthanc_id in orthanc_ids)


@database_task
def remember_retries(settings: Settings, reasons: dict[str, str]) -> None:
    """Keep studies that could not be ingested yet, so that reconciliation tries them again."""
    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        for orthanc_id, reason in reasons.items():
            record_retry(session, orthanc_id, reason, now)


@once_task
def load_retries(settings: Settings) -> list[str]:
    with open_session(settings.database_url) as session:
        return list_retries(session)


@once_task
def load_change_cursor(settings: Settings) -> int:
    with open_session(settings.database_url) as session:
        return read_change_cursor(session)


@database_task
def save_change_cursor(settings: Settings, seq: int) -> None:
    with open_session(settings.database_url) as session:
        write_change_cursor(session, seq)


@once_task
def count_ingested_studies(settings: Settings) -> int:
    with open_session(settings.database_url) as session:
        return count_known_studies(session)


@once_task
def load_ingested_study_ids(settings: Settings) -> set[str]:
    with open_session(settings.database_url) as session:
        return list_known_study_ids(session)
