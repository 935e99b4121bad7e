"""Research exports: cohort sizes (counts only), requests, admins' decisions, downloads."""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Boolean, Date, DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length
from flask import send_file
from marshmallow import RAISE

from core.accounts import Role
from core.cohorts import CohortError, parse_cohort
from core.deidentify import ProfileError
from core.exports import MAX_PURPOSE_LENGTH, MAX_REASON_LENGTH, MIN_PURPOSE_LENGTH
from portal.api import bp
from portal.export_service import (
    decide,
    describe_export,
    downloadable_zip,
    request_export,
    size_cohort,
    visible_export,
    visible_exports,
)
from portal.extensions import db
from portal.security import audit, roles
from storage.exports import list_pseudonyms

RESEARCH_ROLES = (Role.RESEARCHER, Role.ADMIN)


class CohortIn(Schema):
    class Meta:
        unknown = RAISE

    modality = String(validate=Length(max=16))
    date_from = Date()
    date_to = Date()
    body_part = String(validate=Length(max=64))
    description_contains = String(validate=Length(max=256))
    has_final_report = Boolean()
    institution = String(validate=Length(max=128))
    study_uids = List(String(validate=Length(max=64)), validate=Length(max=1000))


class CohortQuery(Schema):
    cohort = Nested(CohortIn, load_default=dict)


class CohortSizeOut(Schema):
    studies = Integer()
    patients = Integer()
    instances = Integer()
    modalities = Dict(keys=String(), values=Integer())


class ExportRequestIn(Schema):
    cohort = Nested(CohortIn, load_default=dict)
    profile = String(load_default="basic", validate=Length(max=255))
    purpose = String(required=True, validate=Length(min=MIN_PURPOSE_LENGTH, max=MAX_PURPOSE_LENGTH))


class DecisionIn(Schema):
    reason = String(load_default="", validate=Length(max=MAX_REASON_LENGTH))


class ProgressOut(Schema):
    total = Integer()
    processed = Integer()
    exported = Integer()
    excluded = Integer()
    withheld = Integer()


class ExportOut(Schema):
    id = Integer()
    state = String()
    requested_by = String()
    purpose = String()
    cohort = Dict()
    profile = String()
    requested_at = DateTime()
    decided_at = DateTime(allow_none=True)
    decided_by = String()
    reason = String()
    started_at = DateTime(allow_none=True)
    finished_at = DateTime(allow_none=True)
    progress = Nested(ProgressOut)
    report = Dict()
    downloadable = Boolean()


class ExportList(Schema):
    items = List(Nested(ExportOut))


class PseudonymOut(Schema):
    patient_key = String()
    pseudonym = String()
    shift_days = Integer()


class PseudonymList(Schema):
    items = List(Nested(PseudonymOut))


def read_cohort(data: dict[str, Any]):
    try:
        return parse_cohort(data)
    except CohortError as error:
        abort(422, str(error))


@bp.post("/exports/cohort-size")
@roles(*RESEARCH_ROLES)
@bp.input(CohortQuery, arg_name="query")
@bp.output(CohortSizeOut)
@bp.doc(summary="How many studies, patients and instances a cohort holds (counts only)")
def measure(query: dict[str, Any]) -> Any:
    return size_cohort(read_cohort(query["cohort"]))


@bp.post("/exports")
@roles(*RESEARCH_ROLES)
@bp.input(ExportRequestIn, arg_name="body")
@bp.output(ExportOut, status_code=201)
@bp.doc(summary="Request a de-identified export of a cohort, for an admin to approve")
def create(body: dict[str, Any]) -> Any:
    cohort = read_cohort(body["cohort"])
    try:
        return describe_export(request_export(cohort, body["profile"], body["purpose"]))
    except ProfileError as error:
        db.session.rollback()
        abort(422, str(error))


@bp.get("/exports")
@roles(*RESEARCH_ROLES)
@bp.output(ExportList)
@bp.doc(summary="Exports with state and progress: a researcher's own, or all for admins")
def list_all() -> Any:
    return {"items": [describe_export(export) for export in visible_exports()]}


@bp.get("/exports/<int:export_id>")
@roles(*RESEARCH_ROLES)
@bp.output(ExportOut)
@bp.doc(summary="One export: state, progress and de-identification report")
def get_one(export_id: int) -> Any:
    export = visible_export(export_id)
    audit("view_export", object_type="export", object_id=str(export_id))
    db.session.commit()
    return describe_export(export)


@bp.post("/exports/<int:export_id>/approve")
@roles(Role.ADMIN)
@bp.input(DecisionIn, arg_name="decision")
@bp.output(ExportOut)
@bp.doc(summary="Approve a request: the export starts")
def approve(export_id: int, decision: dict[str, str]) -> Any:
    return describe_export(decide(export_id, approve=True, reason=decision["reason"]))


@bp.post("/exports/<int:export_id>/reject")
@roles(Role.ADMIN)
@bp.input(DecisionIn, arg_name="decision")
@bp.output(ExportOut)
@bp.doc(summary="Reject a request, with the reason")
def reject(export_id: int, decision: dict[str, str]) -> Any:
    if not decision["reason"].strip():
        abort(422, "a rejection needs a reason")
    return describe_export(decide(export_id, approve=False, reason=decision["reason"]))


@bp.get("/exports/<int:export_id>/download")
@roles(*RESEARCH_ROLES)
@bp.doc(summary="The ZIP of one's own finished export")
def download(export_id: int) -> Any:
    path = downloadable_zip(export_id)
    return send_file(path, mimetype="application/zip", as_attachment=True, download_name=path.name)


@bp.get("/exports/<int:export_id>/pseudonyms")
@roles(Role.ADMIN)
@bp.output(PseudonymList)
@bp.doc(summary="Which patient each pseudonym of an export stands for (admins only)")
def pseudonyms(export_id: int) -> Any:
    visible_export(export_id)
    items = list_pseudonyms(db.session, export_id)
    audit("view_pseudonyms", object_type="export", object_id=str(export_id))
    db.session.commit()
    return {"items": items}
