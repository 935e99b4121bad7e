"""Teaching files through the API: search, read, create (with the de-identified copy),
edit and retire. Roles are the service's (portal/teaching_service.py)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length
from marshmallow import RAISE

from core.accounts import Role
from core.teaching import MAX_DIAGNOSIS, MAX_FINDINGS, MAX_SERIES, MAX_TITLE
from portal import teaching_service as service
from portal.api import bp
from portal.security import roles

READERS = (Role.RADIOLOGIST, Role.RESEARCHER, Role.ADMIN)


class CaseTextIn(Schema):
    class Meta:
        unknown = RAISE

    title = String(required=True, validate=Length(min=1, max=MAX_TITLE))
    diagnosis = String(load_default="", validate=Length(max=MAX_DIAGNOSIS))
    findings = String(load_default="", validate=Length(max=MAX_FINDINGS))
    keywords = List(String(validate=Length(max=50)), load_default=list, validate=Length(max=20))
    difficulty = String(required=True, validate=Length(max=16))


class CaseIn(CaseTextIn):
    study_uid = String(required=True, validate=Length(min=1, max=64))
    series_uids = List(
        String(validate=Length(max=64)), required=True, validate=Length(min=1, max=MAX_SERIES)
    )


class CaseOut(Schema):
    id = Integer()
    title = String()
    diagnosis = String()
    findings = String()
    keywords = List(String())
    difficulty = String()
    modality = String()
    study_uid = String(metadata={"description": "the de-identified copy's Study Instance UID"})
    state = String()
    instances = Integer()
    left_out = List(Dict())
    author = String()
    created_at = DateTime()
    updated_at = DateTime()
    retired = Boolean()
    source_study_uid = String(metadata={"description": "admins only"})
    source_patient_name = String(metadata={"description": "admins only"})


class CaseList(Schema):
    items = List(Nested(CaseOut))


class CaseQuery(Schema):
    text = String(validate=Length(max=100))
    keyword = String(validate=Length(max=50))
    modality = String(validate=Length(max=16))
    diagnosis = String(validate=Length(max=100))


@bp.get("/teaching-cases")
@roles(*READERS)
@bp.input(CaseQuery, location="query", arg_name="query")
@bp.output(CaseList)
@bp.doc(summary="Search the teaching collection (text, keyword, modality, diagnosis)")
def list_teaching_cases(query: dict[str, Any]):
    return {"items": [service.describe(case) for case in service.search(query)]}


@bp.get("/teaching-cases/<int:case_id>")
@roles(*READERS)
@bp.output(CaseOut)
@bp.doc(summary="One teaching case; open `study_uid` in the viewer")
def get_teaching_case(case_id: int):
    return service.describe(service.read(case_id))


@bp.post("/teaching-cases")
@roles(Role.RADIOLOGIST)
@bp.input(CaseIn, arg_name="body")
@bp.output(CaseOut, status_code=201)
@bp.doc(summary="Make a teaching case of a study's key series (copied de-identified)")
def create_teaching_case(body: dict[str, Any]):
    case = service.create(body["study_uid"], body["series_uids"], body)
    return service.describe(case)


@bp.put("/teaching-cases/<int:case_id>")
@roles(Role.RADIOLOGIST)
@bp.input(CaseTextIn, arg_name="body")
@bp.output(CaseOut)
@bp.doc(summary="Edit a case's teaching text (its author)")
def edit_teaching_case(case_id: int, body: dict[str, Any]):
    return service.describe(service.edit(case_id, body))


@bp.post("/teaching-cases/<int:case_id>/retire")
@roles(Role.RADIOLOGIST, Role.ADMIN)
@bp.output(CaseOut)
@bp.doc(summary="Take a case out of the collection (its author, or an admin)")
def retire_teaching_case(case_id: int):
    return service.describe(service.retire(case_id))
