"""The worklist's rules (core/assignments.py): who assigns what to whom, priorities, reasons;
each refusal carries the HTTP status the API answers with."""

from __future__ import annotations

import pytest

from core.accounts import Role
from core.assignments import (
    MAX_PRIORITY_REASON,
    MIN_PRIORITY_REASON,
    AssignmentConflict,
    AssignmentError,
    PriorityError,
    check_assignment,
    check_priority_reason,
    check_release,
    parse_priority,
)
from core.records import Priority

RADIOLOGIST, OTHER, ADMIN = 1, 2, 3


def assign(actor_role: str, actor_id: int, assignee_id: int | None, **new: object) -> None:
    values = {
        "new_email": "r@example.org",
        "new_id": RADIOLOGIST,
        "new_role": Role.RADIOLOGIST,
        "new_active": True,
        **new,
    }
    check_assignment(actor_role, actor_id, assignee_id, **values)


def test_a_radiologist_takes_an_unassigned_study_or_keeps_their_own() -> None:
    assign(Role.RADIOLOGIST, RADIOLOGIST, None)
    assign(Role.RADIOLOGIST, RADIOLOGIST, RADIOLOGIST)


def test_a_radiologist_assigns_to_nobody_else() -> None:
    with pytest.raises(AssignmentError, match="to themselves only") as refused:
        assign(Role.RADIOLOGIST, RADIOLOGIST, None, new_id=OTHER)
    assert refused.value.status == 403


def test_a_study_of_another_radiologist_is_a_conflict() -> None:
    with pytest.raises(AssignmentConflict, match="assigned to another") as refused:
        assign(Role.RADIOLOGIST, RADIOLOGIST, OTHER)
    assert refused.value.status == 409


def test_an_admin_assigns_any_study_to_any_active_radiologist() -> None:
    assign(Role.ADMIN, ADMIN, OTHER, new_id=RADIOLOGIST)


@pytest.mark.parametrize(
    "new",
    [
        {"new_id": None, "new_role": None, "new_active": False},  # no such user
        {"new_active": False},
        {"new_role": Role.REFERRER},
        {"new_role": Role.ADMIN},
    ],
)
def test_only_active_radiologists_get_studies(new: dict[str, object]) -> None:
    with pytest.raises(AssignmentError, match="not an active radiologist") as refused:
        assign(Role.ADMIN, ADMIN, None, **new)
    assert refused.value.status == 403


def test_release_own_study_or_any_as_admin() -> None:
    check_release(Role.RADIOLOGIST, RADIOLOGIST, RADIOLOGIST)
    check_release(Role.RADIOLOGIST, RADIOLOGIST, None)
    check_release(Role.ADMIN, ADMIN, OTHER)
    with pytest.raises(AssignmentError, match="only an admin") as refused:
        check_release(Role.RADIOLOGIST, RADIOLOGIST, OTHER)
    assert refused.value.status == 403


def test_priorities_parse_in_any_case_and_unknown_ones_are_422() -> None:
    assert parse_priority("stat") is Priority.STAT
    assert parse_priority("Routine") is Priority.ROUTINE
    with pytest.raises(PriorityError, match="choose STAT, URGENT, ROUTINE") as refused:
        parse_priority("asap")
    assert refused.value.status == 422


def test_a_priority_change_gives_a_reason_within_the_limits() -> None:
    assert check_priority_reason("  on call  ") == "on call"
    assert check_priority_reason("x" * MIN_PRIORITY_REASON)
    assert check_priority_reason("x" * MAX_PRIORITY_REASON)
    for reason in ("", "  ab  ", "x" * (MAX_PRIORITY_REASON + 1)):
        with pytest.raises(PriorityError, match=r"Give a reason \(3 to 500 characters\)"):
            check_priority_reason(reason)
