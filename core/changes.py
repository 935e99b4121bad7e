"""Read Orthanc's `/changes` feed into the work it implies for the pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class ChangeLike(Protocol):
    change_type: str
    resource_type: str
    resource_id: str


# A study that appeared or settled; a study whose StableStudy event was lost (Orthanc
# stopped before it settled) is still caught by its NewStudy or NewSeries change.
STUDY_EVENTS = frozenset({"NewStudy", "StableStudy"})


@dataclass(frozen=True)
class ChangeWork:
    studies: list[str]  # Orthanc study ids to (re)ingest, first seen first
    series: list[str]  # new series whose study must be looked up, then (re)ingested
    deleted_studies: list[str]


def plan_change_work(changes: Iterable[ChangeLike]) -> ChangeWork:
    """What a page of changes asks for; the last event about a study decides its fate."""
    latest: dict[str, str] = {}
    series: dict[str, None] = {}
    for change in changes:
        if change.resource_type == "Study" and change.change_type in STUDY_EVENTS:
            latest.pop(change.resource_id, None)  # re-insert: keep order of latest event
            latest[change.resource_id] = "ingest"
        elif change.resource_type == "Study" and change.change_type == "Deleted":
            latest.pop(change.resource_id, None)
            latest[change.resource_id] = "delete"
        elif change.resource_type == "Series" and change.change_type == "NewSeries":
            series[change.resource_id] = None
    return ChangeWork(
        studies=[study for study, action in latest.items() if action == "ingest"],
        series=list(series),
        deleted_studies=[study for study, action in latest.items() if action == "delete"],
    )


@dataclass(frozen=True)
class InventoryGaps:
    missing: list[str]  # in the archive, unknown to the database: ingest
    gone: list[str]  # known to the database, no longer in the archive: mark removed


def compare_inventories(archive_ids: set[str], known_ids: set[str]) -> InventoryGaps:
    """The sweep behind the changes feed, which keeps no deletions."""
    return InventoryGaps(
        missing=sorted(archive_ids - known_ids), gone=sorted(known_ids - archive_ids)
    )


# Deletions in the archive come a few at a time, or as a retention purge of old studies.
# Most of the database's studies gone at once is far likelier a wrong or emptied archive
# (a new Orthanc database, another storage folder, a restore of the wrong backup): marking
# them removed would empty the worklist. Past both limits nothing is marked until an
# operator accepts it (`pacs ingest --accept-removals`).
MASS_REMOVAL_STUDIES = 100
MASS_REMOVAL_SHARE = 0.1


def is_mass_removal(gone: int, known: int) -> bool:
    """`gone` of the `known` studies missing from the archive is too many to believe."""
    return gone > MASS_REMOVAL_STUDIES and gone > known * MASS_REMOVAL_SHARE


def describe_withheld_removals(withheld: int) -> str:
    return (
        f"{withheld} studies are no longer in the archive: too many at once to mark removed."
        " Check that Orthanc has the right database and storage; if they were deleted, run"
        " `pacs ingest --accept-removals`"
    )
