"""The worklist's rules: who may assign a study to whom, and how its priority changes."""

from __future__ import annotations

from core.accounts import Role
from core.records import Priority

MIN_PRIORITY_REASON = 3  # characters of the reason a priority change must give
MAX_PRIORITY_REASON = 500


class AssignmentError(ValueError):
    """The change is not allowed or names something that does not exist; `status` is the
    HTTP status that fits."""

    status = 403


class AssignmentConflict(AssignmentError):
    """The study is assigned to another radiologist: the state, not the role, is in the way."""

    status = 409


class PriorityError(AssignmentError):
    """An unknown priority or a missing reason."""

    status = 422


def check_release(actor_role: str, actor_id: int, assignee_id: int | None) -> None:
    """Radiologists give back their own studies; admins anyone's."""
    if actor_role != Role.ADMIN and assignee_id not in (None, actor_id):
        raise AssignmentError("only an admin can take a study from another radiologist")


def check_assignment(
    actor_role: str,
    actor_id: int,
    assignee_id: int | None,
    *,
    new_email: str,
    new_id: int | None,
    new_role: str | None,
    new_active: bool,
) -> None:
    """Radiologists take unassigned studies for themselves; admins assign any study to any
    active radiologist. `new_*` describe the user named (`new_id` None: no such user)."""
    if new_id is None or not new_active or new_role != Role.RADIOLOGIST:
        raise AssignmentError(f"{new_email} is not an active radiologist")
    if actor_role != Role.ADMIN:
        if new_id != actor_id:
            raise AssignmentError("radiologists assign studies to themselves only")
        if assignee_id not in (None, actor_id):
            raise AssignmentConflict("the study is assigned to another radiologist")


def parse_priority(value: str) -> Priority:
    try:
        return Priority(value.upper())
    except ValueError:
        raise PriorityError(
            f"unknown priority {value!r}: choose {', '.join(p.value for p in Priority)}"
        ) from None


def check_priority_reason(reason: str) -> str:
    """The reason, stripped; a priority change must say why."""
    reason = reason.strip()
    if not MIN_PRIORITY_REASON <= len(reason) <= MAX_PRIORITY_REASON:
        raise PriorityError(
            f"Give a reason ({MIN_PRIORITY_REASON} to {MAX_PRIORITY_REASON} characters)"
            " for the new priority."
        )
    return reason
