"""Pure record building and change planning, without an archive."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from core.changes import is_mass_removal, plan_change_work
from core.ingest import assess_study
from core.records import (
    PREPARE_FROM,
    ArchivedStudy,
    Priority,
    build_study_record,
    select_series_to_prepare,
)
from tests.support.validation import POLICY, make_instance


def make_study(instances, **kwargs) -> ArchivedStudy:
    return ArchivedStudy(
        orthanc_id="aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-eeeeeeee",
        last_update="20261127T101500",
        is_stable=True,
        instances=instances,
        **kwargs,
    )


def test_study_record_summarises_series_and_patient() -> None:
    instances = [
        make_instance(
            SERIES_INSTANCE_UID="1.2.3.4.1",
            SERIES_NUMBER="2",
            BODY_PART_EXAMINED="CHEST",
            REQUESTED_PROCEDURE_PRIORITY="HIGH",
            ISSUE_DATE_OF_REQUEST="20261120",
            ISSUE_TIME_OF_REQUEST="0930",
        ),
        make_instance(SERIES_INSTANCE_UID="1.2.3.4.1", SERIES_NUMBER="2", SOP_INSTANCE_UID="1.9"),
        make_instance(SERIES_INSTANCE_UID="1.2.3.4.2", SERIES_NUMBER="1", SOP_INSTANCE_UID="1.8"),
        make_instance(SERIES_INSTANCE_UID="1.2.3.4.9", MODALITY="SR", SOP_INSTANCE_UID="1.7"),
    ]
    record = build_study_record(make_study(instances))
    assert record.patient_name == "Müller^Jürgen"
    assert record.patient_birth_date == datetime.date(1960, 1, 2)
    assert record.study_datetime == datetime.datetime(2026, 11, 20, 10, 15)
    assert record.modality == "CT"
    assert record.modalities == "CT\\SR"
    assert record.body_part == "CHEST"
    assert record.priority is Priority.URGENT
    assert record.ordered_at == datetime.datetime(2026, 11, 20, 9, 30)
    assert record.received_at == datetime.datetime(2026, 11, 27, 10, 15, tzinfo=datetime.UTC)
    assert (record.series_count, record.instance_count) == (3, 4)
    assert [s.series_number for s in record.series] == [1, 2, None]
    assert record.series[1].instance_count == 2


def test_the_exam_spans_its_first_and_last_image_times() -> None:
    """Acquisition DateTime (an offset dropped), else Acquisition Date and Time, else Content
    Date and Time; report SRs, a time without a date and unreadable values do not count."""
    instances = [
        make_instance(ACQUISITION_DATETIME="20261120101702.5+0100", SOP_INSTANCE_UID="1.1"),
        make_instance(
            ACQUISITION_DATE="20261120", ACQUISITION_TIME="102930", SOP_INSTANCE_UID="1.2"
        ),
        make_instance(CONTENT_DATE="20261120", CONTENT_TIME="1016", SOP_INSTANCE_UID="1.3"),
        make_instance(ACQUISITION_TIME="235959", SOP_INSTANCE_UID="1.4"),
        make_instance(ACQUISITION_DATETIME="2026112", SOP_INSTANCE_UID="1.5"),
        make_instance(
            MODALITY="SR", CONTENT_DATE="20261121", CONTENT_TIME="090000", SOP_INSTANCE_UID="1.6"
        ),
    ]
    record = build_study_record(make_study(instances))
    assert record.first_instance_at == datetime.datetime(2026, 11, 20, 10, 16)
    assert record.last_instance_at == datetime.datetime(2026, 11, 20, 10, 29, 30)
    assert "first_instance_at" in record.as_columns()
    bare = build_study_record(make_study([make_instance()]))
    assert (bare.first_instance_at, bare.last_instance_at) == (None, None)


def test_most_urgent_priority_wins_and_default_is_routine() -> None:
    assert build_study_record(make_study([make_instance()])).priority is Priority.ROUTINE
    mixed = [
        make_instance(REQUESTED_PROCEDURE_PRIORITY="LOW"),
        make_instance(REQUESTED_PROCEDURE_PRIORITY="STAT"),
    ]
    assert build_study_record(make_study(mixed)).priority is Priority.STAT


def test_release_overrides_errors_except_unreleasable_ones() -> None:
    broken = make_study([make_instance(MODALITY="XYZ")])
    assert assess_study(broken, POLICY).quarantined
    released = assess_study(broken, POLICY, released=True)
    assert not released.quarantined
    assert "released from quarantine" in released.findings[0].message
    two_patients = make_study([make_instance()], other_patient_ids=["OTHER"])
    assert assess_study(two_patients, POLICY, released=True).quarantined


@dataclass
class FakeChange:
    change_type: str
    resource_type: str
    resource_id: str


def test_change_plan_deduplicates_and_lets_the_last_event_decide() -> None:
    changes = [
        FakeChange("NewPatient", "Patient", "p"),
        FakeChange("NewStudy", "Study", "s1"),
        FakeChange("NewSeries", "Series", "x1"),
        FakeChange("NewInstance", "Instance", "i1"),
        FakeChange("NewStudy", "Study", "s2"),
        FakeChange("StableStudy", "Study", "s1"),
        FakeChange("Deleted", "Study", "s2"),
        FakeChange("Deleted", "Study", "s3"),
        FakeChange("NewStudy", "Study", "s3"),
    ]
    work = plan_change_work(changes)
    assert work.studies == ["s1", "s3"]
    assert work.series == ["x1"]
    assert work.deleted_studies == ["s2"]


def test_a_few_deletions_or_a_purge_are_believed_most_studies_gone_at_once_are_not() -> None:
    assert not is_mass_removal(gone=100, known=100)  # a small site: any number up to 100
    assert not is_mass_removal(gone=1_000, known=10_000)  # a retention purge of a tenth
    assert is_mass_removal(gone=101, known=101)  # the archive emptied
    assert is_mass_removal(gone=1_001, known=10_000)
    assert is_mass_removal(gone=100_000, known=100_000)


def test_only_big_series_read_this_time_are_prepared_for_the_viewer() -> None:
    """A series' metadata is worth building at ingestion only where building it on opening
    would be felt: PREPARE_FROM instances or more, read whole in this pass."""
    big = [
        make_instance(SERIES_INSTANCE_UID="1.2.3.4.1", SOP_INSTANCE_UID=f"1.2.3.4.1.{n}")
        for n in range(PREPARE_FROM)
    ]
    small = [
        make_instance(SERIES_INSTANCE_UID="1.2.3.4.2", SOP_INSTANCE_UID=f"1.2.3.4.2.{n}")
        for n in range(PREPARE_FROM - 1)
    ]
    study = make_study(big + small, kept_series=frozenset({"1.2.3.4.7"}))
    assert select_series_to_prepare(study) == {("1.2.3.4", "1.2.3.4.1"): PREPARE_FROM}
    assert select_series_to_prepare(make_study(small)) == {}
    no_uid = [make_instance(SERIES_INSTANCE_UID=None) for _ in range(PREPARE_FROM)]
    assert select_series_to_prepare(make_study(no_uid)) == {}
