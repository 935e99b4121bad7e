"""Prefect tasks that read the archive; retried with backoff while it is unavailable."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from core.records import ArchivedStudy
from pacs.settings import Settings
from storage.archive import ArchiveClient, ArchiveNotFound, ArchiveUnavailable, ChangesPage

RETRY_DELAYS = [1, 2, 4, 8]


def retry_if_unavailable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry outages (down, timeout, 5xx); anything else will not improve by waiting."""
    try:
        state.result()
    except ArchiveUnavailable:
        return True
    except Exception:
        return False
    return False


# Every archive read: retried with backoff while the archive is unavailable, never cached.
archive_task = task(
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_unavailable,
    cache_policy=NO_CACHE,
)


@archive_task
def fetch_archived_study(settings: Settings, orthanc_id: str) -> ArchivedStudy | None:
    """The study's summary and every instance's tags in two calls; None if it is gone."""
    with ArchiveClient.from_settings(settings) as client:
        try:
            return client.get_archived_study(orthanc_id)
        except ArchiveNotFound:
            return None


@archive_task
def fetch_changes(settings: Settings, since: int, limit: int) -> ChangesPage:
    with ArchiveClient.from_settings(settings) as client:
        return client.get_changes(since=since, limit=limit)


@archive_task
def find_parent_studies(settings: Settings, series_ids: list[str]) -> list[str]:
    """Orthanc ids of the studies of these series (series deleted since are skipped)."""
    studies = []
    with ArchiveClient.from_settings(settings) as client:
        for series_id in series_ids:
            try:
                studies.append(client.get_json(f"/series/{series_id}")["ParentStudy"])
            except ArchiveNotFound:
                continue
    return studies


@archive_task
def count_archive_studies(settings: Settings) -> int:
    with ArchiveClient.from_settings(settings) as client:
        return client.get_statistics()["CountStudies"]


@archive_task
def fetch_archive_study_ids(settings: Settings) -> set[str]:
    with ArchiveClient.from_settings(settings) as client:
        return set(client.list_study_ids())
