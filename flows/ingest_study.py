"""Flows `ingest_study` and `ingest_studies`: stable studies onto the worklist or into quarantine.

A flow run costs ~0.15 s of Prefect bookkeeping, so studies that arrive together
go through one run (`ingest_studies`, a few tasks for the whole batch, never one per
study or instance); a study notified alone goes through `ingest_study`, the deployment's
entry point. Each study is read series by series, only what was not recorded yet
(core/increments.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect import flow, get_run_logger
from prefect.utilities.annotations import quote

from config.settings import Settings, load_settings
from tasks.archive import fetch_archived_studies, glimpse_studies, prepare_viewer_metadata
from tasks.database import (
    StudyOutcome,
    load_recorded_series,
    record_removed_studies,
    record_studies,
    remember_retries,
    select_new_studies,
)

# On the worklist, so soon opened in the viewer (not quarantined, teaching copies, removed).
LISTED_OUTCOMES = frozenset({"ingested", "arriving", "updated"})


@dataclass
class BatchOutcome:
    outcomes: list[StudyOutcome] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # Orthanc id -> reason


def process_studies(
    settings: Settings, orthanc_ids: list[str], *, wait_for_stable: bool
) -> BatchOutcome:
    """Fetch, validate and record studies; `wait_for_stable` leaves those still arriving.

    Studies that failed, or are still arriving, are remembered for the next
    reconciliation. If the archive stays unreachable, all of them are, and the
    error is raised so the flow's state says why.
    """
    if not wait_for_stable:
        list_new_studies_at_once(settings, orthanc_ids)
    try:
        recorded = load_recorded_series(settings, orthanc_ids)
        fetched = fetch_archived_studies(settings, orthanc_ids, recorded, wait_for_stable)
    except Exception as error:
        remember_retries(settings, {i: f"{type(error).__name__}: {error}" for i in orthanc_ids})
        raise
    arriving = [s for s in fetched.studies if wait_for_stable and not s.is_stable]
    ready = [s for s in fetched.studies if not wait_for_stable or s.is_stable]
    if fetched.gone:
        record_removed_studies(settings, fetched.gone)
    # quote(): Prefect would otherwise walk every tag of every instance looking for futures.
    recorded = record_studies(settings, quote(ready))
    batch = BatchOutcome(
        outcomes=recorded.outcomes
        + [StudyOutcome(i, "", "removed", 0, ()) for i in fetched.gone]
        + [StudyOutcome(s.orthanc_id, "", "pending", len(s.instances), ()) for s in arriving],
        failed={**fetched.failed, **recorded.failed},
    )
    waiting = {s.orthanc_id: "still receiving instances" for s in arriving}
    if batch.failed or waiting:
        remember_retries(settings, {**batch.failed, **waiting})
    listed = {o.orthanc_id for o in recorded.outcomes if o.outcome in LISTED_OUTCOMES}
    prepare_viewer_metadata(settings, [s for s in ready if s.orthanc_id in listed])
    return batch


def list_new_studies_at_once(settings: Settings, orthanc_ids: list[str]) -> None:
    """New studies still arriving whose complete series are big go on the worklist from one
    instance first (core/increments.py `plan_glimpse`): reading a few hundred instances takes
    the archive a second or more. What fails here is left to the whole read that follows."""
    try:
        new = select_new_studies(settings, orthanc_ids)
        glimpses = glimpse_studies(settings, new) if new else []
        if glimpses:
            record_studies(settings, quote(glimpses))
    except Exception as error:
        get_run_logger().warning(f"new studies not listed early ({error}); read whole now")


def describe_outcome(outcome: StudyOutcome) -> str:
    findings = f" [{', '.join(outcome.findings)}]" if outcome.findings else ""
    study = outcome.study_instance_uid or outcome.orthanc_id
    return f"study {study}: {outcome.instances} instances, {outcome.outcome}{findings}"


def log_batch(batch: BatchOutcome, seconds: float) -> None:
    logger = get_run_logger()
    for outcome in batch.outcomes:
        logger.info(f"{describe_outcome(outcome)} in {seconds:.2f} s")
    for orthanc_id, reason in batch.failed.items():
        logger.warning(f"study {orthanc_id}: failed ({reason}); reconciliation will retry it")


@flow(name="ingest-study")
def ingest_study(orthanc_study_id: str) -> StudyOutcome:
    """Ingest the study Orthanc announced (by its Orthanc id); fails with the reason."""
    started = time.perf_counter()
    batch = process_studies(load_settings(), [orthanc_study_id], wait_for_stable=False)
    log_batch(batch, time.perf_counter() - started)
    if batch.failed:
        raise RuntimeError(batch.failed[orthanc_study_id])
    return batch.outcomes[0]


@flow(name="ingest-studies")
def ingest_studies(orthanc_study_ids: list[str]) -> BatchOutcome:
    """Ingest several announced studies in one run; one that fails never stops the others."""
    started = time.perf_counter()
    batch = process_studies(load_settings(), orthanc_study_ids, wait_for_stable=False)
    log_batch(batch, time.perf_counter() - started)
    return batch
