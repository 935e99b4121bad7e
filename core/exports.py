"""A research export's life: requested -> approved | rejected; approved -> running -> done |
failed (a finished or failed export may run again, with the same salt). Plus the limits of
what a request says."""

from __future__ import annotations

import enum

MIN_PURPOSE_LENGTH = 10  # characters: say what the data is for
MAX_PURPOSE_LENGTH = 2048
MAX_REASON_LENGTH = 1024  # of an admin's decision


class ExportState(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


# States in which the export will produce (or is producing) data without anyone's action.
PENDING_STATES = (ExportState.APPROVED, ExportState.RUNNING)


class ExportError(ValueError):
    """The export cannot do what was asked in its state; `status` is the HTTP status."""

    status = 409


class ExportNotFound(ExportError):
    status = 404


class PurposeError(ExportError):
    """A request that does not say what the data is for."""

    status = 422


def state_after_decision(export_id: int, state: str, *, approve: bool) -> ExportState:
    """The state after an admin's decision; only a request awaiting one can get it."""
    if state != ExportState.REQUESTED:
        raise ExportError(f"export {export_id} is {state}, not awaiting a decision")
    return ExportState.APPROVED if approve else ExportState.REJECTED


def state_at_start(export_id: int, state: str) -> ExportState:
    """Running: an approved export, or a finished or failed one run again."""
    if state in (ExportState.REQUESTED, ExportState.REJECTED):
        raise ExportError(f"export {export_id} is {state}: it needs an admin's approval")
    return ExportState.RUNNING


def state_after_run(ok: bool) -> ExportState:
    return ExportState.DONE if ok else ExportState.FAILED


def check_purpose(purpose: str) -> str:
    """The purpose, stripped (PurposeError when too short or too long)."""
    purpose = purpose.strip()
    if not MIN_PURPOSE_LENGTH <= len(purpose) <= MAX_PURPOSE_LENGTH:
        raise PurposeError(
            f"Say what the data is for ({MIN_PURPOSE_LENGTH} to {MAX_PURPOSE_LENGTH} characters)."
        )
    return purpose
