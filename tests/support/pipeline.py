"""Waiting for the pipeline: studies uploaded to the archive, then found on the worklist or in
quarantine."""

from __future__ import annotations

import time
from io import BytesIO

from sqlalchemy import select

from config.settings import Settings
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.models.arrivals import StudyArrival
from storage.models.quarantine import QuarantinedStudy
from storage.models.studies import Study


def find_study(settings: Settings, study_uid: str) -> Study | None:
    with open_session(settings.database_url) as session:
        return session.scalar(select(Study).where(Study.study_instance_uid == study_uid))


def is_arriving(settings: Settings, study: Study) -> bool:
    with open_session(settings.database_url) as session:
        return session.get(StudyArrival, study.id) is not None


def wait_for_study(
    settings: Settings, study_uid: str, timeout: float = 45.0, *, complete: bool = True
) -> Study:
    """The study's worklist row once there (and, unless `complete` is False, complete: a
    study is listed while it arrives, PACS_WORKLIST_ARRIVING)."""
    deadline = time.monotonic() + timeout
    while (study := find_study(settings, study_uid)) is None or (
        complete and is_arriving(settings, study)
    ):
        assert time.monotonic() < deadline, f"{study_uid} did not reach the worklist"
        time.sleep(0.1)
    return study


def find_quarantined(settings: Settings, study_uid: str) -> QuarantinedStudy | None:
    with open_session(settings.database_url) as session:
        return session.scalar(
            select(QuarantinedStudy).where(QuarantinedStudy.study_instance_uid == study_uid)
        )


def upload(settings: Settings, datasets) -> None:
    """Store the instances by REST and wait until their studies are stable (complete)."""
    with ArchiveClient.from_settings(settings) as client:
        studies = set()
        for ds in datasets:
            buffer = BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            studies.add(client.upload_instance(buffer.getvalue()).study_id)
        deadline = time.monotonic() + 30
        while not all(client.get_study(study)["IsStable"] for study in studies):
            assert time.monotonic() < deadline, "studies did not become stable"
            time.sleep(0.2)
