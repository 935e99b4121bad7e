"""The report workflow: draft -> preliminary (optional) -> final -> addenda.

Pure decisions, no I/O: which transition an action makes, who may make it, what the
study's status becomes and which event it records. The storage layer applies them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum

from core.accounts import Role
from core.records import StudyStatus
from core.study_events import StudyEventKind

# The report's sections, in reading order, with the headings people see.
SECTIONS = {
    "clinical_information": "Clinical information",
    "comparison": "Comparison",
    "technique": "Technique",
    "findings": "Findings",
    "impression": "Impression",
}
MAX_SECTION_LENGTH = 20_000
MAX_ADDENDUM_LENGTH = 20_000


class ReportStatus(StrEnum):
    DRAFT = "draft"
    PRELIMINARY = "preliminary"
    FINAL = "final"


class ReportAction(StrEnum):
    EDIT = "edit"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    ADDENDUM = "addendum"


class ReportError(Exception):
    """Base of the workflow's refusals; `status` is the HTTP status that fits."""

    status = 400


class ReportConflict(ReportError):
    """The action does not fit the report's state (a final report, a stale version)."""

    status = 409


class ReportForbidden(ReportError):
    """This user may not do this to this report."""

    status = 403


class ReportIncomplete(ReportError):
    """The report lacks what signing needs."""

    status = 422


class ReportPreconditionRequired(ReportError):
    """An existing report was written without saying which version the writer saw."""

    status = 428


# (state before, action) -> state after; None before = no report yet.
TRANSITIONS: dict[tuple[ReportStatus | None, ReportAction], ReportStatus] = {
    (None, ReportAction.EDIT): ReportStatus.DRAFT,
    (ReportStatus.DRAFT, ReportAction.EDIT): ReportStatus.DRAFT,
    (ReportStatus.PRELIMINARY, ReportAction.EDIT): ReportStatus.PRELIMINARY,
    (ReportStatus.DRAFT, ReportAction.PRELIMINARY): ReportStatus.PRELIMINARY,
    (ReportStatus.PRELIMINARY, ReportAction.PRELIMINARY): ReportStatus.PRELIMINARY,
    (ReportStatus.DRAFT, ReportAction.FINAL): ReportStatus.FINAL,
    (ReportStatus.PRELIMINARY, ReportAction.FINAL): ReportStatus.FINAL,
    (ReportStatus.FINAL, ReportAction.ADDENDUM): ReportStatus.FINAL,
}

# The study's status after each signature (an edit only starts the work).
STUDY_STATUS_AFTER = {
    ReportAction.PRELIMINARY: StudyStatus.PRELIMINARY,
    ReportAction.FINAL: StudyStatus.FINAL,
    ReportAction.ADDENDUM: StudyStatus.AMENDED,
}

# The study event each signature records.
EVENT_KINDS = {
    ReportAction.PRELIMINARY: StudyEventKind.PRELIMINARY,
    ReportAction.FINAL: StudyEventKind.FINAL,
    ReportAction.ADDENDUM: StudyEventKind.ADDENDUM,
}


def decide_transition(
    current: ReportStatus | None,
    action: ReportAction,
    *,
    role: str,
    is_assignee: bool,
    assigned_to_other: bool,
) -> ReportStatus:
    """The report's state after `action`, or the reason it is refused.

    Only radiologists write and sign. Anyone of them may start a draft of an
    unassigned study (it becomes theirs); signing needs the assigned radiologist
    (an admin reassigns the study to let someone else sign).
    """
    if role != Role.RADIOLOGIST:
        raise ReportForbidden("only radiologists write and sign reports")
    if assigned_to_other:
        raise ReportForbidden(
            "the study is assigned to another radiologist; an admin can reassign it"
        )
    if action is not ReportAction.EDIT and not is_assignee:
        raise ReportForbidden("only the radiologist the study is assigned to may sign")
    after = TRANSITIONS.get((current, action))
    if after is None:
        raise ReportConflict(explain_refusal(current, action))
    return after


def explain_refusal(current: ReportStatus | None, action: ReportAction) -> str:
    if current is ReportStatus.FINAL:
        return "the report is final and cannot be changed; add an addendum instead"
    if current is None:
        return "there is no report to sign yet; save a draft first"
    if action is ReportAction.ADDENDUM:
        return "addenda are added to final reports only"
    return f"a {current} report cannot be signed {action}"


def clean_sections(sections: Mapping[str, object]) -> dict[str, str]:
    """Every known section as text (missing ones empty); unknown names are refused."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ReportIncomplete(f"unknown report sections: {', '.join(sorted(unknown))}")
    cleaned = {}
    for name in SECTIONS:
        value = sections.get(name) or ""
        if not isinstance(value, str):
            raise ReportIncomplete(f"section {name} must be text")
        if len(value) > MAX_SECTION_LENGTH:
            raise ReportIncomplete(f"section {name} is longer than {MAX_SECTION_LENGTH} characters")
        cleaned[name] = value.replace("\r\n", "\n")
    return cleaned


def check_version(
    stored: int | None, expected: int | None, *, required: bool, changed_by: str = ""
) -> None:
    """Refuse a write based on another version than the stored one (two tabs, two people).
    `stored` is None before the first save, which counts as version 0."""
    if expected is None:
        if required and stored is not None:
            raise ReportPreconditionRequired(
                "send If-Match with the report's ETag (from GET) so no one's changes are lost"
            )
        return
    if expected != (stored or 0):
        raise ReportConflict(
            f"the report was changed elsewhere (you have version {expected}, the saved one is "
            f"version {stored or 0}, by {changed_by or 'nobody'}); reload it before saving, "
            "your text is not lost"
        )


def check_signable(sections: Mapping[str, str]) -> None:
    """A signed report says something: findings or an impression."""
    if not (sections.get("findings", "").strip() or sections.get("impression", "").strip()):
        raise ReportIncomplete("write the findings or the impression before signing")


def check_addendum(text: str) -> str:
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ReportIncomplete("an addendum needs some text")
    if len(text) > MAX_ADDENDUM_LENGTH:
        raise ReportIncomplete(f"an addendum has at most {MAX_ADDENDUM_LENGTH} characters")
    return text


def study_status_after_edit(current: str) -> str:
    """Opening the first draft moves a received study to in progress, nothing else."""
    return StudyStatus.IN_PROGRESS if current == StudyStatus.RECEIVED else current


def derive_uid(*parts: object) -> str:
    """A UID under the 2.25 root from a hash of `parts`: the same version gives the same
    UID, so a retried send can never create a second document."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def document_uids(report_key: str, sequence: int) -> tuple[str, str]:
    """(Series Instance UID, SOP Instance UID) of the report's `sequence`-th signed document;
    all of one report's documents share a series."""
    return derive_uid("report-series", report_key), derive_uid("report-sr", report_key, sequence)


def make_etag(version: int) -> str:
    return f'"{version}"'


def parse_etag(header: str | None) -> int | None:
    """The version an If-Match header names; None when there is none or it is not ours."""
    if not header:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    return int(value) if value.isdigit() else -1
