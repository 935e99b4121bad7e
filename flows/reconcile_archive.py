"""Flow `reconcile_archive`: walk Orthanc's `/changes` feed so that no study is ever missed.

Notifications get lost (Orthanc stopped before a study settled, the platform
was down): this flow, run every minute and by `pacs ingest`, ingests every
study that appeared or changed since the last sequence number it stored, and
marks deleted ones removed. Studies that failed, or were still arriving, last
time are tried again first. Orthanc keeps no deletions in `/changes`: when the
archive's study count and the database's disagree, the two lists are compared.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from prefect import flow, get_run_logger

from core.changes import compare_inventories, plan_change_work
from flows.ingest_study import describe_outcome, process_study
from pacs.settings import Settings, load_settings
from tasks.archive import (
    count_archive_studies,
    fetch_archive_study_ids,
    fetch_changes,
    find_parent_studies,
)
from tasks.database import (
    count_ingested_studies,
    load_change_cursor,
    load_ingested_study_ids,
    load_retries,
    record_removed_studies,
    save_change_cursor,
)


@dataclass
class ReconcileSummary:
    start: int
    end: int
    outcomes: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)


@flow(name="reconcile-archive")
def reconcile_archive(since: int | None = None, page_size: int = 1000) -> ReconcileSummary:
    """Process changes after `since` (default: the stored cursor), page by page."""
    settings = load_settings()
    logger = get_run_logger()
    cursor = load_change_cursor(settings) if since is None else since
    summary = ReconcileSummary(start=cursor, end=cursor)
    ingest_each(settings, load_retries(settings), summary, wait_for_stable=True)
    while True:
        page = fetch_changes(settings, cursor, page_size)
        work = plan_change_work(page.changes)
        studies = list(dict.fromkeys(work.studies + find_parent_studies(settings, work.series)))
        removed = [study for study in work.deleted_studies if study not in studies]
        summary.outcomes["removed"] += record_removed_studies(settings, removed)
        ingest_each(settings, studies, summary, wait_for_stable=True)
        cursor = summary.end = page.last
        save_change_cursor(settings, cursor)
        if page.done:
            break
    sweep_inventory(settings, summary)
    logger.info(
        f"reconciled changes {summary.start}..{summary.end}: "
        f"{dict(summary.outcomes) or 'nothing new'}"
        + (f", {len(summary.failed)} failed (retried next run)" if summary.failed else "")
    )
    return summary


def sweep_inventory(settings: Settings, summary: ReconcileSummary) -> None:
    """When the counts disagree, compare study lists: deletions never reach `/changes`."""
    if count_archive_studies(settings) == count_ingested_studies(settings):
        return
    gaps = compare_inventories(fetch_archive_study_ids(settings), load_ingested_study_ids(settings))
    summary.outcomes["removed"] += record_removed_studies(settings, gaps.gone)
    ingest_each(settings, gaps.missing, summary, wait_for_stable=True)


def ingest_each(
    settings: Settings, orthanc_ids: list[str], summary: ReconcileSummary, *, wait_for_stable: bool
) -> None:
    """Ingest one study after another; one that fails never stops the others."""
    logger = get_run_logger()
    for orthanc_id in orthanc_ids:
        started = time.perf_counter()
        try:
            outcome = process_study(settings, orthanc_id, wait_for_stable=wait_for_stable)
        except Exception as error:
            summary.failed.append(orthanc_id)
            logger.warning(f"study {orthanc_id} failed ({error}); it will be retried")
            continue
        summary.outcomes[outcome.outcome] += 1
        logger.info(describe_outcome(outcome, time.perf_counter() - started))
