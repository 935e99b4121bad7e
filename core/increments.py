"""Which series of a study ingestion reads from the archive: only what it has not recorded.

A study is read series by series. Series recorded before and unchanged in the archive (same
UID, same number of instances) are kept as recorded: a late series, or the next complete
series of a study still arriving, costs its own instances only, not the whole study again.
While a study is still arriving, only its complete (stable) series are read; the others are
counted and read once complete. Anything else (a recorded series changed or gone) reads the
study whole.

A big complete series takes the archive about a second to give all its tags (it parses
every file), so a study seen for the first time while it arrives is first listed from one
instance of it (`plan_glimpse`), and read whole right after.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ArchivedSeries:
    """One series as the archive lists it, without its instances' tags."""

    orthanc_id: str
    series_instance_uid: str
    instance_count: int
    is_stable: bool
    first_instance_id: str = ""


# Complete series with more instances than this are glimpsed before they are read whole.
GLIMPSE_ABOVE = 50


@dataclass(frozen=True)
class SeriesPlan:
    read: tuple[ArchivedSeries, ...]  # whose instances' tags are fetched
    kept: frozenset[str]  # series UIDs kept as recorded
    waiting_instances: int  # in series left for later (still arriving)


def plan_series(
    archived: Sequence[ArchivedSeries],
    recorded: Mapping[str, int] | None,
    *,
    study_stable: bool,
) -> SeriesPlan:
    """What to read of a study whose series are `archived`, given the series `recorded`
    for it (UID -> instances; None when the study cannot be added to, see
    storage/studies.py `find_recorded_series`)."""
    current = {series.series_instance_uid: series.instance_count for series in archived}
    unchanged = bool(recorded) and all(
        current.get(uid) == count for uid, count in (recorded or {}).items()
    )
    kept = frozenset(recorded or ()) if unchanged else frozenset()
    new = [series for series in archived if series.series_instance_uid not in kept]
    read = new if study_stable else [series for series in new if series.is_stable]
    if not read and not kept:  # no series complete yet (listed at its first instance)
        read = new
    waiting = sum(series.instance_count for series in new if series not in read)
    return SeriesPlan(read=tuple(read), kept=kept, waiting_instances=waiting)


def plan_glimpse(
    archived: Sequence[ArchivedSeries], *, study_stable: bool
) -> ArchivedSeries | None:
    """The complete series whose first instance lists a new study at once (None: reading
    the study is quick enough, or it is complete and read whole anyway)."""
    complete = [series for series in archived if series.is_stable and series.first_instance_id]
    if study_stable or sum(series.instance_count for series in complete) <= GLIMPSE_ABOVE:
        return None
    return complete[0]
