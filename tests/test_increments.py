"""Reading a study series by series (pure, without an archive): which series are read, what
an added series does to the recorded study, and the tags kept of each instance."""

from __future__ import annotations

import json

from core import tags as tg
from core.evidence import read_study_evidence
from core.increments import GLIMPSE_ABOVE, ArchivedSeries, plan_glimpse, plan_series
from core.ingest import RecordedStudy, assess_study
from core.records import ArchivedStudy, build_study_record
from core.validation import Finding, Severity, merge_findings
from tests.support.validation import POLICY, make_instance


def series(uid: str, count: int, *, stable: bool = True) -> ArchivedSeries:
    return ArchivedSeries(f"orthanc-{uid}", uid, count, stable)


def test_a_new_study_reads_its_complete_series_and_counts_the_others() -> None:
    archived = [series("1", 300), series("2", 120, stable=False)]
    plan = plan_series(archived, None, study_stable=False)
    assert [s.series_instance_uid for s in plan.read] == ["1"]
    assert plan.kept == frozenset() and plan.waiting_instances == 120


def test_a_study_with_no_complete_series_yet_is_read_as_it_is() -> None:
    plan = plan_series([series("1", 1, stable=False)], None, study_stable=False)
    assert [s.series_instance_uid for s in plan.read] == ["1"]


def test_recorded_unchanged_series_are_kept_and_only_new_ones_read() -> None:
    archived = [series("1", 300), series("2", 300), series("3", 5)]
    plan = plan_series(archived, {"1": 300, "2": 300}, study_stable=True)
    assert [s.series_instance_uid for s in plan.read] == ["3"]
    assert plan.kept == {"1", "2"} and plan.waiting_instances == 0


def test_nothing_new_reads_nothing() -> None:
    plan = plan_series([series("1", 300)], {"1": 300}, study_stable=True)
    assert plan.read == () and plan.kept == {"1"}


def test_a_recorded_series_that_changed_or_went_reads_the_study_whole() -> None:
    archived = [series("1", 301), series("2", 300)]
    grown = plan_series(archived, {"1": 300, "2": 300}, study_stable=True)
    assert grown.kept == frozenset() and len(grown.read) == 2
    gone = plan_series([series("2", 300)], {"1": 300, "2": 300}, study_stable=True)
    assert gone.kept == frozenset() and len(gone.read) == 1


def make_study(instances, **kwargs) -> ArchivedStudy:
    return ArchivedStudy(
        orthanc_id="aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-eeeeeeee",
        last_update="20261127T101500",
        is_stable=True,
        instances=instances,
        **kwargs,
    )


def recorded_study(instances) -> RecordedStudy:
    assessment = assess_study(make_study(instances), POLICY)
    return RecordedStudy(assessment.record, assessment.findings, assessment.header)


def test_a_late_series_is_added_to_the_recorded_study() -> None:
    first = [
        make_instance(SOP_INSTANCE_UID=f"1.2.3.4.1.{n}", ACCESSION_NUMBER=None) for n in (1, 2)
    ]
    base = recorded_study(first)
    late = [
        make_instance(
            SERIES_INSTANCE_UID="1.2.3.4.2",
            SERIES_NUMBER="2",
            SOP_INSTANCE_UID="1.2.3.4.2.1",
            MODALITY="PT",
            ACCESSION_NUMBER=None,
        )
    ]
    study = make_study(late, kept_series=frozenset({"1.2.3.4.1"}))
    added = assess_study(study, POLICY, base=base)
    whole = assess_study(make_study(first + late), POLICY)
    assert added.record == whole.record, "the same record as reading the study whole"
    assert [e.sop_instance_uid for e in added.evidence] == ["1.2.3.4.2.1"]
    assert not added.evidence_complete and added.header == base.header
    assert added.findings == whole.findings  # MISSING_ACCESSION_NUMBER, 3 instances


def test_a_late_series_of_another_patient_is_quarantined() -> None:
    base = recorded_study([make_instance()])
    late = [make_instance(SERIES_INSTANCE_UID="1.2.3.4.2", PATIENT_ID="P2")]
    added = assess_study(make_study(late, kept_series=frozenset({"1.2.3.4.1"})), POLICY, base=base)
    assert added.quarantined
    assert "MULTIPLE_PATIENTS" in {finding.code for finding in added.findings}


def test_series_still_arriving_are_counted_on_the_record() -> None:
    record = build_study_record(make_study([make_instance()], waiting_instances=299))
    assert (record.series_count, record.instance_count) == (1, 300)


def test_merged_findings_count_instances_and_keep_the_worst_severity() -> None:
    old = [Finding("A", Severity.WARNING, "old message", 2)]
    new = [Finding("A", Severity.ERROR, "new message", 1), Finding("B", Severity.WARNING, "b")]
    merged = {f.code: f for f in merge_findings(old, new)}
    assert merged["A"] == Finding("A", Severity.ERROR, "old message", 3)
    assert merged["B"].instances == 1
    assert Finding.from_dict(merged["A"].as_dict()) == merged["A"]


def test_only_the_tags_ingestion_reads_are_kept_and_values_shared() -> None:
    shared: dict[str, str] = {}
    full = {**make_instance(), "0018,0050": "1.0", "0008,1140": [{"0008,1150": "1.2"}]}
    # Each instance parsed from JSON of its own, as from Orthanc's answer: its own strings.
    kept = [tg.keep_ingest_tags(json.loads(json.dumps(full)), shared) for _ in range(2)]
    assert set(kept[0]) == set(make_instance()), "everything else is dropped"
    assert kept[0][tg.PATIENT_NAME] is kept[1][tg.PATIENT_NAME]
    # The rules and records see the same values as from the full tags.
    assert read_study_evidence(kept) == read_study_evidence([full, full])


def test_a_new_study_with_a_big_complete_series_is_glimpsed_first() -> None:
    big = ArchivedSeries("o1", "1", 300, True, "i1")
    arriving = ArchivedSeries("o2", "2", 40, False, "i2")
    assert plan_glimpse([arriving, big], study_stable=False) == big
    assert plan_glimpse([arriving, big], study_stable=True) is None, "read whole anyway"
    small = ArchivedSeries("o3", "3", GLIMPSE_ABOVE, True, "i3")
    assert plan_glimpse([small, arriving], study_stable=False) is None, "quick to read"
