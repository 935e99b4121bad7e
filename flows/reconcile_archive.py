"""Flow `reconcile_archive`: walk Orthanc's `/changes` feed so that no study is ever missed.

Notifications get lost (Orthanc stopped before a study settled, the platform
was down): this flow, run every minute and by `pacs ingest`, ingests every
study that appeared or changed since the last sequence number it stored.
Studies that failed, or were still arriving, last time are tried again first.
Orthanc keeps no deletions in `/changes`: when the archive's study count and
the database's disagree, the two lists are compared. Too many studies gone at once
(`core.changes.is_mass_removal`) are withheld, not removed, until accepted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from prefect import flow, get_run_logger

from config.settings import Settings, load_settings
from core.changes import (
    compare_inventories,
    describe_withheld_removals,
    is_mass_removal,
    plan_change_work,
)
from flows.ingest_study import process_studies
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

BATCH_SIZE = 50  # studies per fetch/record task pair


@dataclass
class ReconcileSummary:
    start: int
    end: int
    outcomes: Counter[str] = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)
    withheld: int = 0  # studies gone from the archive, too many to mark removed unasked


@flow(name="reconcile-archive")
def reconcile_archive(
    since: int | None = None, page_size: int = 1000, accept_removals: bool = False
) -> ReconcileSummary:
    """Process changes after `since` (default: the stored cursor), page by page;
    `accept_removals` marks removed however many studies the archive no longer has."""
    settings = load_settings()
    cursor = load_change_cursor(settings) if since is None else since
    summary = ReconcileSummary(start=cursor, end=cursor)
    ingest_in_batches(settings, load_retries(settings), summary)
    while True:
        page = fetch_changes(settings, cursor, page_size)
        work = plan_change_work(page.changes)
        studies = list(dict.fromkeys(work.studies + find_parent_studies(settings, work.series)))
        removed = [study for study in work.deleted_studies if study not in studies]
        summary.outcomes["removed"] += record_removed_studies(settings, removed)
        ingest_in_batches(settings, studies, summary)
        cursor = summary.end = page.last
        save_change_cursor(settings, cursor)
        if page.done:
            break
    sweep_inventory(settings, summary, accept_removals)
    counts = {outcome: n for outcome, n in summary.outcomes.items() if n}
    logger = get_run_logger()
    logger.info(
        f"reconciled changes {summary.start}..{summary.end}: {counts or 'nothing new'}"
        + (f", {len(summary.failed)} failed (retried next run)" if summary.failed else "")
    )
    if summary.withheld:
        logger.error(describe_withheld_removals(summary.withheld))
    return summary


def sweep_inventory(settings: Settings, summary: ReconcileSummary, accept_removals: bool) -> None:
    """When the counts disagree, compare study lists: deletions never reach `/changes`."""
    if count_archive_studies(settings) == count_ingested_studies(settings):
        return
    known = load_ingested_study_ids(settings)
    gaps = compare_inventories(fetch_archive_study_ids(settings), known)
    if accept_removals or not is_mass_removal(len(gaps.gone), len(known)):
        summary.outcomes["removed"] += record_removed_studies(settings, gaps.gone)
    else:
        summary.withheld = len(gaps.gone)
    ingest_in_batches(settings, gaps.missing, summary)


def ingest_in_batches(
    settings: Settings, orthanc_ids: list[str], summary: ReconcileSummary
) -> None:
    """Studies still arriving are left for their own notification (and remembered)."""
    for start in range(0, len(orthanc_ids), BATCH_SIZE):
        chunk = orthanc_ids[start : start + BATCH_SIZE]
        try:
            batch = process_studies(settings, chunk, wait_for_stable=True)
        except Exception as error:  # the archive stayed unreachable: all are remembered
            summary.failed.update({orthanc_id: str(error) for orthanc_id in chunk})
            continue
        summary.outcomes.update(outcome.outcome for outcome in batch.outcomes)
        summary.failed.update(batch.failed)
