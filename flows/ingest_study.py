"""Flow `ingest_study`: one stable study from the archive onto the worklist or into quarantine."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger

from pacs.settings import Settings, load_settings
from tasks.archive import fetch_archived_study
from tasks.database import (
    StudyOutcome,
    record_removed_studies,
    record_study,
    remember_retry,
)


def process_study(settings: Settings, orthanc_id: str, *, wait_for_stable: bool) -> StudyOutcome:
    """Fetch, validate and record one study; `wait_for_stable` skips one still arriving.

    A failure after the tasks' retries is remembered for the next reconciliation
    and raised again, so the calling flow's state says why.
    """
    try:
        study = fetch_archived_study(settings, orthanc_id)
        if study is None:
            record_removed_studies(settings, [orthanc_id])
            return StudyOutcome(orthanc_id, "", "removed", 0, ())
        if wait_for_stable and not study.is_stable:
            remember_retry(settings, orthanc_id, "still receiving instances")
            return StudyOutcome(orthanc_id, "", "pending", len(study.instances), ())
        return record_study(settings, study)
    except Exception as error:
        remember_retry(settings, orthanc_id, f"{type(error).__name__}: {error}")
        raise


def describe_outcome(outcome: StudyOutcome, seconds: float) -> str:
    findings = f" [{', '.join(outcome.findings)}]" if outcome.findings else ""
    return (
        f"study {outcome.study_instance_uid or outcome.orthanc_id}: {outcome.instances} "
        f"instances, {outcome.outcome}{findings} in {seconds:.2f} s"
    )


@flow(name="ingest-study")
def ingest_study(orthanc_study_id: str) -> StudyOutcome:
    """Ingest the study Orthanc announced as stable (by its Orthanc id)."""
    started = time.perf_counter()
    outcome = process_study(load_settings(), orthanc_study_id, wait_for_stable=False)
    get_run_logger().info(describe_outcome(outcome, time.perf_counter() - started))
    return outcome
