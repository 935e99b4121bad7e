"""Prefect tasks that read the archive; retried with backoff while it is unavailable."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from core.records import ArchivedStudy, select_series_to_prepare
from storage.archive import (
    ArchiveClient,
    ArchiveError,
    ArchiveNotFound,
    ArchiveRejected,
    ChangesPage,
)
from storage.metadata_cache import MetadataCache, get_preparer
from tasks.retries import archive_task, once_task


@dataclass(frozen=True)
class FetchedStudies:
    studies: list[ArchivedStudy]
    gone: list[str]  # no longer in the archive
    failed: dict[str, str]  # Orthanc id -> why the archive would not give it


@archive_task
def fetch_archived_studies(
    settings: Settings,
    orthanc_ids: list[str],
    recorded_series: dict[str, dict[str, int]] | None = None,
    wait_for_stable: bool = False,
) -> FetchedStudies:
    """Each study's summary, series and the tags of the series not recorded yet
    (`recorded_series`, see core/increments.py), streamed; `wait_for_stable`: studies
    still arriving are only summarised.

    An outage fails (and retries) the whole task; a study the archive refuses is
    set aside with the reason, so one bad study never holds up the others.
    """
    fetched = FetchedStudies(studies=[], gone=[], failed={})
    with ArchiveClient.from_settings(settings) as client:
        for orthanc_id in orthanc_ids:
            try:
                fetched.studies.append(
                    client.get_archived_study(
                        orthanc_id,
                        (recorded_series or {}).get(orthanc_id),
                        wait_for_stable=wait_for_stable,
                        complete_series_only=True,
                    )
                )
            except ArchiveNotFound:
                fetched.gone.append(orthanc_id)
            except ArchiveRejected as error:
                fetched.failed[orthanc_id] = str(error)
    return fetched


def prepare_viewer_metadata(settings: Settings, studies: list[ArchivedStudy]) -> int:
    """Have the viewer's series metadata of the big series just read prepared, for the
    origins the portal remembers, so that a radiologist's first look does not wait for the
    archive to build it (storage/metadata_cache.py); beside the ingestion, which goes on at
    once. The number of series queued; one not prepared is built when first opened.

    Not a task: it only queues (the archive is read by the preparer's thread), and a task
    run's bookkeeping would be most of its cost in every ingestion run."""
    if not MetadataCache(settings.metadata_cache_dir).list_viewers():
        return 0
    series = [
        (study_uid, series_uid, count)
        for study in studies
        for (study_uid, series_uid), count in select_series_to_prepare(study).items()
    ]
    return get_preparer(settings).submit(series) if series else 0


@once_task
def glimpse_studies(settings: Settings, orthanc_ids: list[str]) -> list[ArchivedStudy]:
    """New studies still arriving, each as one instance of a big complete series: listed
    at once, read whole right after. Best effort: the whole read follows anyway."""
    glimpses = []
    with ArchiveClient.from_settings(settings) as client:
        for orthanc_id in orthanc_ids:
            try:
                glimpse = client.get_study_glimpse(orthanc_id)
            except ArchiveError:
                continue
            if glimpse is not None:
                glimpses.append(glimpse)
    return glimpses


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
