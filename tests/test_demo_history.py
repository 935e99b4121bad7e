"""The demo department's history (demo/history.py): the same studies whenever it runs, work at
every status, turnarounds that differ by priority and breach their targets sometimes."""

from __future__ import annotations

import datetime
import statistics
from zoneinfo import ZoneInfo

from core.ingest import assess_study
from core.records import ArchivedStudy
from core.tags import tags_from_dataset
from demo.history import HISTORY_DAYS, build_history, build_quarantine_examples

NOW = datetime.datetime(2026, 11, 30, 17, 0, tzinfo=datetime.UTC)
ZONE = ZoneInfo("Europe/Paris")


def status_of(steps) -> str:
    kinds = [step.kind for step in steps]
    for kind, status in (
        ("addendum", "amended"),
        ("final", "final"),
        ("preliminary", "preliminary"),
        ("draft", "in_progress"),
    ):
        if kind in kinds:
            return status
    return "received"


def test_a_later_run_finds_the_same_studies() -> None:
    """Only times move with `now`: identities (and so Orthanc's ids) stay."""
    first = build_history(NOW, ZONE)
    later = build_history(NOW + datetime.timedelta(days=3, hours=5), ZONE)
    fields = ("study_instance_uid", "orthanc_id", "accession_number", "modality", "priority")
    for a, b in zip(first, later, strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
        assert a.datasets[0].PatientID == b.datasets[0].PatientID
    assert len({study.study_instance_uid for study in first}) == len(first)


def test_the_history_spans_eight_weeks_with_work_at_every_status() -> None:
    history = build_history(NOW, ZONE)
    assert len(history) >= 300
    start = NOW - datetime.timedelta(days=HISTORY_DAYS)
    assert all(start <= study.received_at < NOW for study in history)
    for study in history:
        times = [step.at for step in study.steps]
        assert times == sorted(times) and all(study.received_at <= t <= NOW for t in times)
    statuses = {status_of(study.steps) for study in history}
    assert statuses == {"received", "in_progress", "preliminary", "final", "amended"}
    assert {study.modality for study in history} == {"CR", "DX", "CT", "MR", "US"}


def test_turnaround_follows_priority_and_some_work_breaches() -> None:
    targets = {"STAT": 60, "HIGH": 720, "ROUTINE": 5760}
    minutes: dict[str, list[float]] = {priority: [] for priority in targets}
    for study in build_history(NOW, ZONE):
        final = next((step.at for step in study.steps if step.kind == "final"), None)
        if final is not None:
            minutes[study.priority].append((final - study.received_at).total_seconds() / 60)
    medians = {priority: statistics.median(values) for priority, values in minutes.items()}
    assert medians["STAT"] < medians["HIGH"] < medians["ROUTINE"]
    for priority, target in targets.items():
        breaches = sum(value > target for value in minutes[priority])
        assert 0 < breaches < len(minutes[priority]) / 2, (priority, breaches)


def test_history_images_pass_validation_and_the_examples_fail_it() -> None:
    history = build_history(NOW, ZONE)
    for study in history[:40]:
        archived = ArchivedStudy(
            study.orthanc_id, "20261130T170000", True, [tags_from_dataset(study.datasets[0])]
        )
        assessment = assess_study(archived)
        assert not [f for f in assessment.findings if f.severity == "error"], study.modality
        assert assessment.record.received_at == datetime.datetime(
            2026, 11, 30, 17, 0, tzinfo=datetime.UTC
        )
    codes = []
    for ds in build_quarantine_examples(NOW, ZONE):
        archived = ArchivedStudy("x", "20261130T170000", True, [tags_from_dataset(ds)])
        codes += [f.code for f in assess_study(archived).findings if f.severity == "error"]
    assert sorted(codes) == ["INVALID_STUDY_DATE", "MODALITY_NOT_ALLOWED"]
