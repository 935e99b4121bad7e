"""Prefect tasks of the research export: plan, de-identify a batch, deliver, record."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from config.settings import Settings
from core.cohorts import parse_cohort
from core.deidentify import Deidentifier, parse_profile
from core.export_instances import deidentify_files
from core.export_manifest import InstanceSummary, build_manifest, build_report
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.export_files import read_staged, remove_staging, stage_instance, write_zip
from storage.exports import (
    add_progress,
    finish_export,
    get_export,
    remember_pseudonyms,
    select_cohort,
    start_export,
)
from tasks.retries import archive_task, once_task

STOW_BATCH = 50


@dataclass(frozen=True)
class ExportPlan:
    export_id: int
    salt: str
    profile: str
    instance_ids: list[str]
    staging: Path


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@archive_task
def plan_export(settings: Settings, export_id: int) -> ExportPlan:
    """The cohort's instances in the archive; the export starts running with its total."""
    with open_session(settings.database_url) as session:
        export = get_export(session, export_id)
        studies = select_cohort(session, parse_cohort(export.cohort))
        salt, profile = export.salt, export.profile
    instance_ids = []
    with ArchiveClient.from_settings(settings) as client:
        for study in studies:
            instance_ids += [item["ID"] for item in client.get_study_instances(study.orthanc_id)]
    with open_session(settings.database_url) as session:
        start_export(session, export_id, len(instance_ids), utc_now())
    staging = settings.exports_dir / f"export-{export_id}.staging"
    remove_staging(staging)
    return ExportPlan(export_id, salt, profile, instance_ids, staging)


@archive_task
def deidentify_batch(
    settings: Settings, plan: ExportPlan, instance_ids: list[str], workers: int
) -> list[InstanceSummary]:
    """Fetch a batch from the archive, de-identify and verify it across `workers` processes,
    stage what passed, and record progress and the pseudonyms (the only place they live)."""
    with ArchiveClient.from_settings(settings) as client:
        files = [client.get_instance_file(instance_id) for instance_id in instance_ids]
    deidentifier = Deidentifier(salt=bytes.fromhex(plan.salt), options=parse_profile(plan.profile))
    results = deidentify_files(files, deidentifier, workers=workers)
    summaries = []
    for result in results:
        summary = InstanceSummary(
            status=result.status,
            reason=result.reason,
            pseudonym=result.pseudonym,
            study_uid=result.study_uid,
            series_uid=result.series_uid,
            sop_uid=result.sop_uid,
            modality=result.modality,
        )
        if result.status == "exported":
            stage_instance(plan.staging, summary, result.data)
        summaries.append(summary)
    with open_session(settings.database_url) as session:
        add_progress(session, plan.export_id, Counter(s.status for s in summaries))
        remember_pseudonyms(
            session,
            plan.export_id,
            {(r.patient_key, r.pseudonym, r.shift_days) for r in results if r.patient_key},
        )
    return summaries


@once_task
def write_export_zip(
    settings: Settings, plan: ExportPlan, summaries: list[InstanceSummary], out_path: str | None
) -> str:
    """The ZIP under PACS_HOME/exports (or `out_path`); the staging folder goes."""
    target = Path(out_path) if out_path else settings.exports_dir / f"export-{plan.export_id}.zip"
    report = build_report(plan.profile, summaries)
    write_zip(plan.staging, target, summaries, build_manifest(summaries), report)
    remove_staging(plan.staging)
    return str(target)


@archive_task
def send_to_research_archive(
    settings: Settings, plan: ExportPlan, summaries: list[InstanceSummary]
) -> str:
    """STOW the export to the research Orthanc in batches; the staging folder goes."""
    files = iter(read_staged(plan.staging, summaries))
    with ArchiveClient(
        settings.research_orthanc_url,
        settings.research_orthanc_user,
        settings.research_orthanc_password,
    ) as client:
        while batch := list(islice(files, STOW_BATCH)):
            client.store_instances(batch)
    remove_staging(plan.staging)
    return settings.research_orthanc_url


@once_task
def record_export_result(
    settings: Settings,
    plan: ExportPlan,
    summaries: list[InstanceSummary],
    destination: str,
    error: str,
) -> None:
    with open_session(settings.database_url) as session:
        finish_export(
            session,
            plan.export_id,
            ok=not error,
            destination=destination,
            report=build_report(plan.profile, summaries),
            reason=error,
            now=utc_now(),
        )
