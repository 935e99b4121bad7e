"""`pacs demo`'s eight weeks of history (demo/history.py) written as the department lived it.

Each earlier study is recorded the way ingestion records a study the archive completed at
its arrival time (same validation, same record, same evidence), then read and signed through
the reporting rules at the times of its steps; only then are its images sent, so the
pipeline finds it listed and keeps its arrival time. Studies already recorded are skipped:
a second run adds nothing. The two quarantine examples go through the pipeline like any
modality's study, and a finished research export is made for the demo researcher.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from typing import TextIO
from zoneinfo import ZoneInfo

from config.settings import Settings
from core.cohorts import parse_cohort
from core.exports import ExportState
from core.ingest import assess_study
from core.records import ArchivedStudy
from core.reports import ReportAction
from core.tags import tags_from_dataset
from core.validation import ValidationPolicy
from demo.history import (
    RADIOLOGISTS,
    HistoryStudy,
    build_history,
    build_quarantine_examples,
    orthanc_instance_id,
)
from storage.accounts import find_user
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.dicom_sender import DicomSendError, send_datasets
from storage.exports import create_export, list_exports
from storage.models.accounts import User
from storage.reports import add_addendum, find_report, save_draft, sign_report
from storage.studies import (
    find_listed_study,
    list_recorded_study_ids,
    record_study_opened,
    save_assessment,
)
from tasks.database import make_policy

log = logging.getLogger(__name__)
DEMO_EXPORT_PURPOSE = "Demo: radiograph cohort for a fracture-detection study"
SEND_ATTEMPTS = 3
BATCH = 10  # studies a transaction
ADDENDUM_TEXT = "Compared with the outside study received later: appearances unchanged."


def record_history(
    settings: Settings, *, now: datetime.datetime, out: TextIO
) -> list[HistoryStudy]:
    """Record the history studies the database lacks; returns every history study."""
    history = build_history(now, ZoneInfo(settings.timezone))
    policy = make_policy(settings)
    with open_session(settings.database_url) as session:
        known = list_recorded_study_ids(session)
    missing = [study for study in history if study.orthanc_id not in known]
    for start in range(0, len(missing), BATCH):  # short write locks: the pipeline writes too
        with open_session(settings.database_url) as session:
            readers = {
                user.email: user
                for email in RADIOLOGISTS
                if (user := find_user(session, email)) is not None
            }
            for study in missing[start : start + BATCH]:
                record_history_study(session, study, readers, policy)
    added = len(missing)
    signed = sum(any(step.kind == "final" for step in s.steps) for s in history)
    out.write(
        f"demo: {len(history)} earlier studies over eight weeks ({added} recorded now, "
        f"{signed} reported, {len(history) - signed} still open)\n"
    )
    return history


def record_history_study(
    session, study: HistoryStudy, readers: dict[str, User], policy: ValidationPolicy
) -> None:
    archived = ArchivedStudy(
        orthanc_id=study.orthanc_id,
        last_update=study.received_at.strftime("%Y%m%dT%H%M%S"),
        is_stable=True,
        instances=[tags_from_dataset(ds) for ds in study.datasets],
    )
    save_assessment(session, assess_study(archived, policy), study.received_at)
    record = find_listed_study(session, study.orthanc_id)
    sections = {"findings": study.findings, "impression": study.impression}
    for step in study.steps:
        actor = readers.get(step.radiologist)
        if actor is None:
            continue
        if step.kind == "opened":
            record_study_opened(session, study.study_instance_uid, actor.email, step.at)
        elif step.kind == "draft":
            save_draft(session, record, actor, sections, None, step.at)
        elif step.kind in ("preliminary", "final"):
            report = find_report(session, record)
            action = ReportAction.PRELIMINARY if step.kind == "preliminary" else ReportAction.FINAL
            sign_report(session, record, actor, action, report.version, step.at)
        else:
            add_addendum(session, record, actor, ADDENDUM_TEXT, step.at)


def send_missing(settings: Settings, datasets: Sequence, calling_aet: str) -> int:
    """C-STORE the datasets the archive lacks; returns how many were sent.

    An association that breaks off (seen under heavy load: a C-STORE response the sender
    took for a request, then a timeout) is tried again for the instances still missing."""
    sent = 0
    for attempt in range(1, SEND_ATTEMPTS + 1):
        with ArchiveClient.from_settings(settings) as client:
            stored = set(client.get_json("/instances"))
        missing = [ds for ds in datasets if orthanc_instance_id(ds) not in stored]
        if not missing:
            return sent
        try:
            summary = send_datasets(
                missing,
                host="127.0.0.1",
                port=settings.orthanc_dicom_port,
                called_aet=settings.orthanc_aet,
                calling_aet=calling_aet,
            )
        except DicomSendError as error:
            if attempt == SEND_ATTEMPTS:
                raise
            log.warning("demo: %s; sending the rest again", error)
            continue
        if summary.failed:
            raise DicomSendError(f"the archive refused {len(summary.failed)} demo instances")
        sent += summary.sent
    return sent


def history_datasets(history: Sequence[HistoryStudy], now: datetime.datetime, zone: str) -> list:
    """The history's images and the two studies the pipeline will quarantine."""
    return [ds for study in history for ds in study.datasets] + build_quarantine_examples(
        now, ZoneInfo(zone)
    )


def request_demo_export(settings: Settings, now: datetime.datetime) -> int | None:
    """The researcher's export of the radiographs (approved by the demo admin), unless they
    have one already; returns its id when it is to be run."""
    with open_session(settings.database_url) as session:
        researcher = find_user(session, "researcher@demo.example")
        if researcher is None:
            return None
        if any(e.purpose == DEMO_EXPORT_PURPOSE for e in list_exports(session, researcher.id)):
            return None
        export = create_export(
            session,
            cohort=parse_cohort({"modality": "DX", "has_final_report": True}),
            profile="basic",
            purpose=DEMO_EXPORT_PURPOSE,
            requested_by=researcher.email,
            requester_id=researcher.id,
            now=now,
            state=ExportState.APPROVED,
        )
        export.reason = "approved for the demo"
        export.decided_by, export.decided_at = "admin@demo.example", now
        return export.id
