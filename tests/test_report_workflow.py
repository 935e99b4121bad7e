"""The report state machine, transition by transition, and its small pure helpers."""

from __future__ import annotations

import pytest

from core.records import StudyStatus
from core.report_templates import load_default_templates, suggest_template
from core.reports import (
    SECTIONS,
    TRANSITIONS,
    ReportAction,
    ReportConflict,
    ReportForbidden,
    ReportIncomplete,
    ReportPreconditionRequired,
    ReportStatus,
    check_addendum,
    check_signable,
    check_version,
    clean_sections,
    decide_transition,
    derive_uid,
    document_uids,
    make_etag,
    parse_etag,
    study_status_after_edit,
)

DRAFT, PRELIMINARY, FINAL = ReportStatus.DRAFT, ReportStatus.PRELIMINARY, ReportStatus.FINAL
EDIT, SIGN_PRELIMINARY, SIGN_FINAL, ADDENDUM = ReportAction


def decide(current, action, *, role="radiologist", assignee=True, other=False):
    return decide_transition(
        current, action, role=role, is_assignee=assignee, assigned_to_other=other
    )


@pytest.mark.parametrize(
    ("current", "action", "after"),
    [
        (None, EDIT, DRAFT),
        (DRAFT, EDIT, DRAFT),
        (PRELIMINARY, EDIT, PRELIMINARY),
        (DRAFT, SIGN_PRELIMINARY, PRELIMINARY),
        (PRELIMINARY, SIGN_PRELIMINARY, PRELIMINARY),
        (DRAFT, SIGN_FINAL, FINAL),
        (PRELIMINARY, SIGN_FINAL, FINAL),
        (FINAL, ADDENDUM, FINAL),
    ],
)
def test_allowed_transitions(current, action, after) -> None:
    assert decide(current, action) is after


@pytest.mark.parametrize(
    ("current", "action", "message"),
    [
        (FINAL, EDIT, "final and cannot be changed"),
        (FINAL, SIGN_FINAL, "final and cannot be changed"),
        (FINAL, SIGN_PRELIMINARY, "final and cannot be changed"),
        (None, SIGN_FINAL, "no report to sign"),
        (None, SIGN_PRELIMINARY, "no report to sign"),
        (None, ADDENDUM, "no report"),
        (DRAFT, ADDENDUM, "final reports only"),
        (PRELIMINARY, ADDENDUM, "final reports only"),
    ],
)
def test_refused_transitions_are_conflicts(current, action, message) -> None:
    with pytest.raises(ReportConflict, match=message):
        decide(current, action)


def test_every_pair_is_either_a_transition_or_a_conflict() -> None:
    for current in (None, *ReportStatus):
        for action in ReportAction:
            if (current, action) in TRANSITIONS:
                assert decide(current, action) is TRANSITIONS[(current, action)]
            else:
                with pytest.raises(ReportConflict):
                    decide(current, action)


@pytest.mark.parametrize("role", ["admin", "referrer", "manager", "researcher"])
@pytest.mark.parametrize("action", list(ReportAction))
def test_only_radiologists_write_and_sign(role, action) -> None:
    with pytest.raises(ReportForbidden, match="only radiologists"):
        decide(DRAFT, action, role=role)


@pytest.mark.parametrize("action", [SIGN_PRELIMINARY, SIGN_FINAL, ADDENDUM])
def test_only_the_assigned_radiologist_signs(action) -> None:
    current = FINAL if action is ADDENDUM else DRAFT
    with pytest.raises(ReportForbidden, match="assigned to may sign"):
        decide(current, action, assignee=False)
    with pytest.raises(ReportForbidden, match="another radiologist"):
        decide(current, action, assignee=False, other=True)


def test_a_draft_of_an_unassigned_study_may_be_started_but_not_of_someone_elses() -> None:
    assert decide(None, EDIT, assignee=False) is DRAFT
    with pytest.raises(ReportForbidden, match="another radiologist"):
        decide(DRAFT, EDIT, assignee=False, other=True)


def test_the_first_draft_moves_only_a_received_study_to_in_progress() -> None:
    assert study_status_after_edit(StudyStatus.RECEIVED) == StudyStatus.IN_PROGRESS
    for status in (StudyStatus.IN_PROGRESS, StudyStatus.PRELIMINARY):
        assert study_status_after_edit(status) == status


def test_sections_are_cleaned_and_checked() -> None:
    cleaned = clean_sections({"findings": "a\r\nb", "impression": None})
    assert cleaned == {**dict.fromkeys(SECTIONS, ""), "findings": "a\nb"}
    with pytest.raises(ReportIncomplete, match="unknown report sections: colour"):
        clean_sections({"colour": "red"})
    with pytest.raises(ReportIncomplete, match="must be text"):
        clean_sections({"findings": 3})
    with pytest.raises(ReportIncomplete, match="longer than"):
        clean_sections({"findings": "x" * 20_001})
    with pytest.raises(ReportIncomplete, match="findings or the impression"):
        check_signable(clean_sections({"technique": "CT"}))
    check_signable(clean_sections({"impression": "Normal."}))
    assert check_addendum("  late finding \r\n") == "late finding"
    with pytest.raises(ReportIncomplete):
        check_addendum("   ")


def test_document_uids_are_deterministic_distinct_and_valid() -> None:
    series, first = document_uids("key-1", 1)
    assert document_uids("key-1", 1) == (series, first)
    assert document_uids("key-1", 2)[0] == series  # one series per report
    uids = {first, document_uids("key-1", 2)[1], document_uids("key-2", 1)[1], series}
    assert len(uids) == 4
    for uid in uids:
        assert uid.startswith("2.25.") and len(uid) <= 64
        assert all(part.isdigit() and (part == "0" or part[0] != "0") for part in uid.split("."))
    assert derive_uid("a", 1) != derive_uid("a", 2)


def test_etags_round_trip() -> None:
    assert parse_etag(make_etag(7)) == 7
    assert parse_etag('W/"7"') == 7
    assert parse_etag(None) is None and parse_etag("") is None
    assert parse_etag('"abc"') == -1  # never matches a version


def test_default_templates_cover_the_departments_examinations() -> None:
    templates = load_default_templates()
    keys = {t.key for t in templates}
    assert {"generic", "ct-chest", "ct-head", "mr-brain", "xr-chest", "us-abdomen"} <= keys
    assert all(set(t.sections) == set(SECTIONS) for t in templates)
    assert suggest_template(templates, "CT", "chest") == "ct-chest"
    assert suggest_template(templates, "DX", "CHEST") == "xr-chest"
    assert suggest_template(templates, "CR", "CHEST") == "xr-chest"
    assert suggest_template(templates, "MR", "HEAD") == "mr-brain"
    assert suggest_template(templates, "US", "ABDOMEN") == "us-abdomen"
    assert suggest_template(templates, "CT", "KNEE") == "generic"


def test_versions_guard_against_lost_updates() -> None:
    check_version(None, None, required=True)  # the first save of a new report
    check_version(None, 0, required=True)
    check_version(3, 3, required=True)
    check_version(3, None, required=False)  # signing without If-Match signs what is stored
    with pytest.raises(ReportConflict, match="you have version 2, the saved one is version 3"):
        check_version(3, 2, required=True, changed_by="b@example.org")
    with pytest.raises(ReportConflict):
        check_version(None, 1, required=True)
    with pytest.raises(ReportPreconditionRequired):
        check_version(3, None, required=True)
