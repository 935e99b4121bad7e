"""The research export's life (core/exports.py): every state against every transition, and
the request's limits; refusals carry their HTTP status."""

from __future__ import annotations

import pytest

from core.exports import (
    MAX_PURPOSE_LENGTH,
    MIN_PURPOSE_LENGTH,
    PENDING_STATES,
    ExportError,
    ExportNotFound,
    ExportState,
    PurposeError,
    check_purpose,
    state_after_decision,
    state_after_run,
    state_at_start,
)

STARTABLE = {ExportState.APPROVED, ExportState.RUNNING, ExportState.DONE, ExportState.FAILED}


def test_the_states_are_the_stored_names() -> None:
    assert [s.value for s in ExportState] == [
        "requested",
        "approved",
        "rejected",
        "running",
        "done",
        "failed",
    ]
    assert set(PENDING_STATES) == {ExportState.APPROVED, ExportState.RUNNING}


@pytest.mark.parametrize("state", list(ExportState))
def test_only_a_request_gets_a_decision(state: ExportState) -> None:
    if state is ExportState.REQUESTED:
        assert state_after_decision(7, state, approve=True) is ExportState.APPROVED
        assert state_after_decision(7, state, approve=False) is ExportState.REJECTED
        return
    with pytest.raises(ExportError, match=f"export 7 is {state}, not awaiting") as refused:
        state_after_decision(7, state.value, approve=True)
    assert refused.value.status == 409


@pytest.mark.parametrize("state", list(ExportState))
def test_only_an_approved_export_runs_and_may_run_again(state: ExportState) -> None:
    if state in STARTABLE:
        assert state_at_start(7, state.value) is ExportState.RUNNING
        return
    with pytest.raises(ExportError, match="needs an admin's approval") as refused:
        state_at_start(7, state.value)
    assert refused.value.status == 409


def test_a_run_ends_done_or_failed() -> None:
    assert state_after_run(True) is ExportState.DONE
    assert state_after_run(False) is ExportState.FAILED


def test_an_unknown_export_is_404() -> None:
    assert ExportNotFound("no export 9").status == 404
    assert issubclass(ExportNotFound, ExportError)


def test_a_request_says_what_the_data_is_for() -> None:
    assert check_purpose("  nodule detection  ") == "nodule detection"
    assert check_purpose("x" * MIN_PURPOSE_LENGTH)
    assert check_purpose("x" * MAX_PURPOSE_LENGTH)
    for purpose in ("", "too short", "x" * (MAX_PURPOSE_LENGTH + 1)):
        with pytest.raises(PurposeError, match=r"\(10 to 2048 characters\)") as refused:
            check_purpose(purpose)
        assert refused.value.status == 422
