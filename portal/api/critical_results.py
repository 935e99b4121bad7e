"""Critical results through the API: the caller's list, acknowledgement, telephone records."""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import AwareDateTime, Boolean, DateTime, Integer, List, Nested, String
from apiflask.validators import Length
from flask_login import current_user

from core.accounts import CLINICAL_READERS, Role
from core.critical_results import MAX_RECIPIENT_LENGTH, CriticalResultError
from portal.api import bp
from portal.critical_results import acknowledge_result, oncall, record_call
from portal.extensions import db
from portal.security import audit, roles
from storage.critical_results import list_critical_results
from storage.models.critical_results import CriticalResult


class CommunicationOut(Schema):
    recipient = String()
    communicated_at = DateTime()
    read_back = Boolean()
    recorded_by = String()


class CriticalResultOut(Schema):
    id = Integer()
    study_instance_uid = String()
    accession_number = String()
    category = String()
    flagged_by = String()
    flagged_at = DateTime()
    due_at = DateTime()
    acknowledged_at = DateTime(allow_none=True)
    acknowledged_by = String()
    escalated_at = DateTime(allow_none=True)
    communications = List(Nested(CommunicationOut))


class CriticalResultList(Schema):
    items = List(Nested(CriticalResultOut))


class CommunicationIn(Schema):
    recipient = String(required=True, validate=Length(min=1, max=MAX_RECIPIENT_LENGTH))
    communicated_at = AwareDateTime(required=True)
    read_back = Boolean(required=True)


def describe(result: CriticalResult) -> dict[str, Any]:
    return {
        **{
            name: getattr(result, name)
            for name in CriticalResultOut().fields
            if hasattr(result, name)
        },
        "study_instance_uid": result.study.study_instance_uid,
        "accession_number": result.study.accession_number,
    }


@bp.get("/critical-results")
@roles(*CLINICAL_READERS)
@bp.output(CriticalResultList)
@bp.doc(summary="Critical results for the caller, unacknowledged (escalated first) first")
def get_critical_results() -> dict[str, Any]:
    results = list_critical_results(db.session, current_user.user, oncall())
    audit("view_critical_results", object_type="critical_results", detail=f"{len(results)}")
    db.session.commit()
    return {"items": [describe(r) for r in results]}


@bp.post("/critical-results/<int:result_id>/acknowledge")
@roles(*CLINICAL_READERS)
@bp.output(CriticalResultOut)
@bp.doc(summary="Acknowledge receipt (the referring physician, or the on-call contact)")
def post_acknowledgement(result_id: int) -> dict[str, Any]:
    try:
        return describe(acknowledge_result(result_id))
    except CriticalResultError as error:
        abort(error.status, str(error))


@bp.post("/studies/<study_uid>/critical-result/communications")
@roles(Role.RADIOLOGIST)
@bp.input(CommunicationIn, arg_name="call")
@bp.output(CriticalResultOut, status_code=201)
@bp.doc(summary="Record a telephone communication (read-back confirmed closes the loop)")
def post_communication(study_uid: str, call: dict[str, Any]) -> dict[str, Any]:
    try:
        result = record_call(
            study_uid, call["recipient"], call["communicated_at"], call["read_back"]
        )
    except CriticalResultError as error:
        abort(error.status, str(error))
    return describe(result)
