"""Turn what the archive holds about a study into the records the worklist needs.

Pure functions over Orthanc's study summary and its instances' tags (short
format), so they are unit-tested without an archive or a database.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from core import tags as tg
from core.tags import Tags

# Series of these modalities hold documents and annotations, not the examination.
NON_IMAGING_MODALITIES = frozenset({"SR", "PR", "KO", "DOC", "REG", "SEG", "RTSTRUCT"})


class StudyStatus(StrEnum):
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"
    QUARANTINED = "quarantined"
    REMOVED = "removed"


class Priority(StrEnum):
    STAT = "STAT"
    URGENT = "URGENT"
    ROUTINE = "ROUTINE"


# DICOM Requested Procedure Priority (0040,1003) defined terms -> the department's three levels.
DICOM_PRIORITIES = {
    "STAT": Priority.STAT,
    "HIGH": Priority.URGENT,
    "URGENT": Priority.URGENT,
    "ROUTINE": Priority.ROUTINE,
    "MEDIUM": Priority.ROUTINE,
    "LOW": Priority.ROUTINE,
}


@dataclass(frozen=True)
class ArchivedStudy:
    """What the archive returned for one study: its summary and the tags of the instances
    read (see core/increments.py: series already recorded, or still arriving, are not)."""

    orthanc_id: str
    last_update: str  # Orthanc's LastUpdate, e.g. "20261127T213351" (UTC)
    is_stable: bool
    instances: Sequence[Tags]
    other_patient_ids: Sequence[str] = ()
    kept_series: frozenset[str] = frozenset()  # recorded and unchanged: added to, not read
    waiting_instances: int = 0  # in series still arriving, counted but not read yet


@dataclass(frozen=True)
class SeriesRecord:
    series_instance_uid: str
    modality: str
    series_number: int | None
    description: str
    body_part: str
    instance_count: int


@dataclass(frozen=True)
class StudyRecord:
    study_instance_uid: str
    orthanc_id: str
    patient_name: str
    patient_id: str
    patient_birth_date: datetime.date | None
    patient_sex: str
    accession_number: str
    study_date: datetime.date | None
    study_datetime: datetime.datetime | None
    modality: str
    modalities: str
    description: str
    body_part: str
    referring_physician: str
    institution: str
    priority: Priority
    ordered_at: datetime.datetime | None
    received_at: datetime.datetime
    series_count: int
    instance_count: int
    series: tuple[SeriesRecord, ...] = field(default=())
    issuer_of_patient_id: str = ""
    # When the exam's first and last images were made (the modality's wall clock): the exam's
    # start and end for turnaround analytics when no MPPS told them.
    first_instance_at: datetime.datetime | None = None
    last_instance_at: datetime.datetime | None = None

    def as_columns(self) -> dict[str, Any]:
        """The study's columns (series excluded), for the database layer."""
        columns = {name: getattr(self, name) for name in self.__dataclass_fields__}
        del columns["series"]
        return columns


def parse_orthanc_timestamp(text: str) -> datetime.datetime:
    """Orthanc's `YYYYMMDDTHHMMSS` timestamps, which it keeps in UTC."""
    return datetime.datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=datetime.UTC)


def combine_date_time(date_text: str, time_text: str) -> datetime.datetime | None:
    date = tg.parse_date(date_text)
    if date is None:
        return None
    time = tg.parse_time(time_text) or datetime.time(0, 0)
    return datetime.datetime.combine(date, time)


def read_instance_time(instance: Tags) -> datetime.datetime | None:
    """When an image was made: Acquisition DateTime, else Acquisition Date and Time, else
    Content Date and Time (a time without a date is no instant)."""
    # DT is YYYYMMDDHHMMSS.FFFFFF&ZZXX: an offset, when given, is dropped as for orders.
    moment = tg.get_text(instance, tg.ACQUISITION_DATETIME).split("+")[0].split("-")[0]
    if len(moment) > 8 and (value := combine_date_time(moment[:8], moment[8:])):
        return value
    for date_tag, time_tag in (
        (tg.ACQUISITION_DATE, tg.ACQUISITION_TIME),
        (tg.CONTENT_DATE, tg.CONTENT_TIME),
    ):
        time_text = tg.get_text(instance, time_tag)
        if time_text and (value := combine_date_time(tg.get_text(instance, date_tag), time_text)):
            return value
    return None


def read_instance_span(
    instances: Sequence[Tags],
) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """The first and last image times of the exam (documents and annotations left out)."""
    times = [
        value
        for instance in instances
        if tg.get_text(instance, tg.MODALITY) not in NON_IMAGING_MODALITIES
        and (value := read_instance_time(instance)) is not None
    ]
    return (min(times), max(times)) if times else (None, None)


# Series of fewer instances are built by the archive when first opened: well under 0.1 s
# (about 0.35 ms an instance), not worth a second read of every file at ingestion.
PREPARE_FROM = 250


def select_series_to_prepare(study: ArchivedStudy) -> dict[tuple[str, str], int]:
    """The series whose viewer metadata is worth preparing at ingestion, with their number of
    instances: read whole this time (new, or changed since they were recorded; not those
    kept or still arriving), and of at least PREPARE_FROM instances."""
    counts: Counter[tuple[str, str]] = Counter()
    for instance in study.instances:
        study_uid = tg.get_text(instance, tg.STUDY_INSTANCE_UID)
        series_uid = tg.get_text(instance, tg.SERIES_INSTANCE_UID)
        if study_uid and series_uid:
            counts[study_uid, series_uid] += 1
    return {series: count for series, count in counts.items() if count >= PREPARE_FROM}


def pick_common(instances: Sequence[Tags], tag: str) -> str:
    """The most frequent non-empty value of `tag`, so one odd instance cannot override."""
    counts = Counter(text for instance in instances if (text := tg.get_text(instance, tag)))
    return counts.most_common(1)[0][0] if counts else ""


def read_priority(instances: Sequence[Tags]) -> Priority:
    found = {tg.get_text(i, tg.REQUESTED_PROCEDURE_PRIORITY).upper() for i in instances}
    levels = [DICOM_PRIORITIES[value] for value in found if value in DICOM_PRIORITIES]
    for level in Priority:  # the most urgent one wins
        if level in levels:
            return level
    return Priority.ROUTINE


def build_series_records(instances: Sequence[Tags]) -> tuple[SeriesRecord, ...]:
    groups: dict[str, list[Tags]] = {}
    for instance in instances:
        groups.setdefault(tg.get_text(instance, tg.SERIES_INSTANCE_UID), []).append(instance)
    records = [
        SeriesRecord(
            series_instance_uid=uid,
            modality=pick_common(members, tg.MODALITY),
            series_number=tg.get_int(members[0], tg.SERIES_NUMBER),
            description=pick_common(members, tg.SERIES_DESCRIPTION),
            body_part=pick_common(members, tg.BODY_PART_EXAMINED),
            instance_count=len(members),
        )
        for uid, members in groups.items()
    ]
    return sort_series(records)


def sort_series(records: Sequence[SeriesRecord]) -> tuple[SeriesRecord, ...]:
    return tuple(sorted(records, key=lambda s: (s.series_number is None, s.series_number or 0)))


def summarize_series(series: Sequence[SeriesRecord]) -> dict[str, Any]:
    """The study's columns that its series decide: main modality (by images), all
    modalities, body part, and the counts."""
    imaging = [s for s in series if s.modality not in NON_IMAGING_MODALITIES] or list(series)
    modality_counts: Counter[str] = Counter()
    for record in imaging:
        modality_counts[record.modality] += record.instance_count
    body_parts = Counter(s.body_part for s in imaging if s.body_part)
    return {
        "modality": modality_counts.most_common(1)[0][0] if modality_counts else "",
        "modalities": "\\".join(sorted({s.modality for s in series if s.modality})),
        "body_part": body_parts.most_common(1)[0][0] if body_parts else "",
        "series_count": len(series),
        "instance_count": sum(s.instance_count for s in series),
    }


def add_series_records(recorded: StudyRecord, study: ArchivedStudy) -> StudyRecord:
    """A recorded study with the series of `study`'s instances added (a late series, or the
    next complete series of a study still arriving); the rest stays as recorded."""
    series = sort_series((*recorded.series, *build_series_records(study.instances)))
    summary = summarize_series(series)
    summary["instance_count"] += study.waiting_instances
    first, last = read_instance_span(study.instances)
    return replace(
        recorded,
        series=series,
        received_at=parse_orthanc_timestamp(study.last_update),
        first_instance_at=min(filter(None, (recorded.first_instance_at, first)), default=None),
        last_instance_at=max(filter(None, (recorded.last_instance_at, last)), default=None),
        **summary,
    )


def build_study_record(study: ArchivedStudy) -> StudyRecord:
    """The worklist's view of an archived study (which must have instances)."""
    instances = study.instances
    series = build_series_records(instances)
    first_instance_at, last_instance_at = read_instance_span(instances)
    summary = summarize_series(series)
    summary["instance_count"] += study.waiting_instances
    return StudyRecord(
        study_instance_uid=pick_common(instances, tg.STUDY_INSTANCE_UID),
        orthanc_id=study.orthanc_id,
        patient_name=pick_common(instances, tg.PATIENT_NAME),
        patient_id=pick_common(instances, tg.PATIENT_ID),
        patient_birth_date=tg.parse_date(pick_common(instances, tg.PATIENT_BIRTH_DATE)),
        patient_sex=pick_common(instances, tg.PATIENT_SEX),
        accession_number=pick_common(instances, tg.ACCESSION_NUMBER),
        study_date=tg.parse_date(pick_common(instances, tg.STUDY_DATE)),
        study_datetime=combine_date_time(
            pick_common(instances, tg.STUDY_DATE), pick_common(instances, tg.STUDY_TIME)
        ),
        description=pick_common(instances, tg.STUDY_DESCRIPTION),
        referring_physician=pick_common(instances, tg.REFERRING_PHYSICIAN_NAME),
        institution=pick_common(instances, tg.INSTITUTION_NAME),
        priority=read_priority(instances),
        ordered_at=combine_date_time(
            pick_common(instances, tg.ISSUE_DATE_OF_REQUEST),
            pick_common(instances, tg.ISSUE_TIME_OF_REQUEST),
        ),
        received_at=parse_orthanc_timestamp(study.last_update),
        series=series,
        issuer_of_patient_id=pick_common(instances, tg.ISSUER_OF_PATIENT_ID),
        first_instance_at=first_instance_at,
        last_instance_at=last_instance_at,
        **summary,
    )


def describe_study_line(modality: str, description: str) -> str:
    """ "CT THORAX LOW DOSE", from modality CT and a description that may already start with
    it (as modalities often write it): the modality is prefixed only when it is not there."""
    words = description.split()
    if words and words[0].upper() == modality.upper():
        return " ".join(words)
    return f"{modality} {' '.join(words)}".strip()


def format_person_name(name: str) -> str:
    """A DICOM PN ("Family^Given^Middle^Prefix^Suffix", groups split by "=") for people:
    "Family, Given Middle". Only the first (alphabetic) group is shown."""
    alphabetic = name.split("=")[0]
    family, given, middle, prefix, suffix = (alphabetic.split("^") + [""] * 5)[:5]
    first = " ".join(part for part in (prefix, given, middle) if part)
    full = ", ".join(part for part in (family, first) if part)
    return f"{full} {suffix}".strip() if suffix else full
