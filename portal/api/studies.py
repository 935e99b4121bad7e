"""The worklist API: list, look at, assign and prioritise studies."""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Boolean, Date, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask_login import current_user
from marshmallow import RAISE

from core.accounts import WORKLIST_ROLES, Role
from core.assignments import MAX_PRIORITY_REASON, MIN_PRIORITY_REASON, AssignmentError
from core.records import Priority, format_person_name
from portal.api import bp
from portal.extensions import db
from portal.security import audit, audit_study, roles, utc_now
from storage.assignments import assign_study, find_listed_study, set_priority
from storage.models.studies import Study
from storage.worklist import (
    SORT_COLUMNS,
    WORKLIST_STATUSES,
    WorklistQuery,
    find_arriving,
    query_worklist,
)

PRIORITIES = [p.value for p in Priority]


class StudyFilters(Schema):
    status = List(String(validate=OneOf([s.value for s in WORKLIST_STATUSES])))
    modality = String(validate=Length(max=16))
    priority = String(validate=OneOf(PRIORITIES))
    assignee = String(validate=Length(max=255))
    q = String(validate=Length(max=64))
    date_from = Date(data_key="from")
    date_to = Date(data_key="to")
    sort = String(validate=OneOf(list(SORT_COLUMNS)), load_default="received_at")
    order = String(validate=OneOf(["asc", "desc"]), load_default="desc")
    page = Integer(validate=Range(min=1, max=1_000_000), load_default=1)
    per_page = Integer(validate=Range(min=1, max=200), load_default=50)


class Warning_(Schema):
    code = String()
    severity = String()
    message = String()


class SeriesOut(Schema):
    series_instance_uid = String()
    series_number = Integer(allow_none=True)
    modality = String()
    description = String()
    body_part = String()
    instance_count = Integer()


class StudyOut(Schema):
    study_instance_uid = String()
    status = String()
    priority = String()
    patient_name = String()
    patient_name_display = String()
    patient_id = String()
    patient_birth_date = Date(allow_none=True)
    patient_sex = String()
    accession_number = String()
    study_date = Date(allow_none=True)
    study_datetime = DateTime(allow_none=True)
    modality = String()
    modalities = List(String())
    description = String()
    body_part = String()
    referring_physician = String()
    institution = String()
    received_at = DateTime()
    series_count = Integer()
    instance_count = Integer(metadata={"description": "grows while the study is arriving"})
    arriving = Boolean(
        metadata={"description": "listed before the archive calls it complete (stable)"}
    )
    assignee = String(allow_none=True)
    warnings = List(Nested(Warning_))


class StudyDetail(StudyOut):
    series = List(Nested(SeriesOut))


class StudyPage(Schema):
    items = List(Nested(StudyOut))
    total = Integer()
    page = Integer()
    per_page = Integer()
    counts = Nested(Schema.from_dict({s.value: Integer() for s in WORKLIST_STATUSES}))


class Assignment(Schema):
    assignee = String(required=True, allow_none=True, validate=Length(max=255))


class PriorityChange(Schema):
    priority = String(required=True, validate=OneOf(PRIORITIES))
    reason = String(
        required=True, validate=Length(min=MIN_PRIORITY_REASON, max=MAX_PRIORITY_REASON)
    )


STUDY_COLUMNS = tuple(name for name in StudyOut().fields if hasattr(Study, name))


def describe_study(study: Study, arriving: bool | None = None) -> dict[str, Any]:
    if arriving is None:
        arriving = bool(find_arriving(db.session, [study.id]))
    return {
        **{name: getattr(study, name) for name in STUDY_COLUMNS},
        "arriving": arriving,
        "patient_name_display": format_person_name(study.patient_name),
        "modalities": [m for m in study.modalities.split("\\") if m],
        "assignee": study.assignee.email if study.assignee else None,
    }


@bp.get("/studies")
@roles(*WORKLIST_ROLES)
# unknown=RAISE: a misspelt filter must not silently return everything.
@bp.input(StudyFilters, location="query", arg_name="filters", unknown=RAISE)
@bp.output(StudyPage)
@bp.doc(summary="The worklist: filtered, sorted, one page with its total")
def list_studies(filters: dict[str, Any]) -> dict[str, Any]:
    query = WorklistQuery(
        statuses=tuple(filters.get("status", ())),
        modality=filters.get("modality"),
        priority=filters.get("priority"),
        assignee=filters.get("assignee"),
        text=filters.get("q"),
        date_from=filters.get("date_from"),
        date_to=filters.get("date_to"),
        sort=filters["sort"],
        descending=filters["order"] == "desc",
        page=filters["page"],
        per_page=filters["per_page"],
    )
    page = query_worklist(db.session, query, me=current_user.user)
    audit("view_worklist", object_type="worklist")
    db.session.commit()
    return {
        "items": [describe_study(study, study.id in page.arriving) for study in page.items],
        "total": page.total,
        "page": query.page,
        "per_page": query.per_page,
        "counts": {s.value: page.counts.get(s.value, 0) for s in WORKLIST_STATUSES},
    }


@bp.get("/studies/<study_uid>")
@roles(*WORKLIST_ROLES)
@bp.output(StudyDetail)
@bp.doc(summary="One study with its series")
def get_study(study_uid: str) -> dict[str, Any]:
    study = require_study(study_uid)
    audit_study("view_study", study_uid)
    db.session.commit()
    return {**describe_study(study), "series": study.series}


@bp.post("/studies/<study_uid>/assign")
@roles(*WORKLIST_ROLES)
@bp.input(Assignment, arg_name="assignment")
@bp.output(StudyOut)
@bp.doc(summary="Assign to a radiologist (null releases); radiologists only to themselves")
def assign(study_uid: str, assignment: dict[str, Any]) -> dict[str, Any]:
    study = require_study(study_uid, for_update=True)
    try:
        assign_study(db.session, study, current_user.user, assignment["assignee"], utc_now())
    except AssignmentError as error:
        audit_study("assign", study_uid, "denied", detail=str(error))
        db.session.commit()
        abort(error.status, str(error))
    audit_study("assign", study_uid, detail=f"assignee={assignment['assignee']}")
    db.session.commit()
    return describe_study(study)


@bp.post("/studies/<study_uid>/priority")
@roles(Role.RADIOLOGIST, Role.ADMIN)
@bp.input(PriorityChange, arg_name="change")
@bp.output(StudyOut)
@bp.doc(summary="Change the priority, with a reason kept in the audit trail")
def change_priority(study_uid: str, change: dict[str, str]) -> dict[str, Any]:
    study = require_study(study_uid, for_update=True)
    previous = study.priority
    set_priority(study, change["priority"], current_user.user, change["reason"], utc_now())
    audit_study("priority", study_uid, detail=f"{previous} -> {study.priority}: {change['reason']}")
    db.session.commit()
    return describe_study(study)


def require_study(study_uid: str, *, for_update: bool = False) -> Study:
    """The listed study or a 404; `for_update` (a writer) locks its row (`find_listed_study`)."""
    if len(study_uid) > 64:
        abort(400, "a Study Instance UID has at most 64 characters")
    study = find_listed_study(db.session, study_uid, for_update=for_update)
    if study is None:
        abort(404, f"no study {study_uid} on the worklist")
    return study
