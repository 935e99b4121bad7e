"""Admins' API: the quarantine (list, release, delete) and the audit trail (read-only)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import DateTime, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import RAISE

from core.accounts import Role
from core.identity import IdentityDecision
from core.quarantine import QuarantineError, QuarantineState
from portal.api import bp
from portal.archive_errors import report_archive_error
from portal.extensions import db
from portal.quarantine import delete_quarantined, release_quarantined
from portal.security import audit, roles
from storage.accounts import query_audit
from storage.archive import ArchiveError
from storage.studies import list_quarantine


class QuarantineOut(Schema):
    orthanc_id = String()
    state = String()
    study_instance_uid = String()
    patient_id = String()
    patient_name = String()
    modalities = String()
    description = String()
    instance_count = Integer()
    reasons = List(Raw())
    identity_changes = List(Raw(), metadata={"description": "{field, old, new} of each change"})
    quarantined_at = DateTime()
    checked_at = DateTime()


class QuarantineList(Schema):
    items = List(Nested(QuarantineOut))


class AuditFilters(Schema):
    user = String(validate=Length(max=255))
    action = String(validate=Length(max=64))
    study = String(validate=Length(max=64))
    since = DateTime(data_key="from")
    until = DateTime(data_key="to")
    page = Integer(validate=Range(min=1, max=1_000_000), load_default=1)
    per_page = Integer(validate=Range(min=1, max=500), load_default=100)


class AuditOut(Schema):
    at = DateTime()
    user_email = String()
    role = String()
    client_ip = String()
    action = String()
    object_type = String()
    object_id = String()
    study_uid = String()
    outcome = String()
    detail = String()


class AuditPage(Schema):
    items = List(Nested(AuditOut))
    total = Integer()


@bp.get("/quarantine")
@roles(Role.ADMIN)
@bp.output(QuarantineList)
@bp.doc(summary="Studies held back by validation, with every reason")
def list_quarantined() -> dict[str, Any]:
    entries = list_quarantine(db.session)
    audit("view_quarantine", object_type="quarantine")
    db.session.commit()
    return {"items": entries}


@bp.get("/audit")
@roles(Role.ADMIN)
@bp.input(AuditFilters, location="query", arg_name="filters", unknown=RAISE)
@bp.output(AuditPage)
@bp.doc(summary="The audit trail, newest first")
def list_audit(filters: dict[str, Any]) -> dict[str, Any]:
    items, total = query_audit(
        db.session,
        user=filters.get("user"),
        action=filters.get("action"),
        study_uid=filters.get("study"),
        since=filters.get("since"),
        until=filters.get("until"),
        page=filters["page"],
        per_page=filters["per_page"],
    )
    audit("view_audit", object_type="audit")
    db.session.commit()
    return {"items": items, "total": total}


class Resolved(Schema):
    orthanc_id = String()
    state = String()


class ReleaseIn(Schema):
    identity = String(
        validate=OneOf(list(IdentityDecision)),
        load_default=None,
        metadata={
            "description": "for a reported study whose identity changed (IDENTITY_CHANGED): "
            "keep the recorded identity or accept the new one"
        },
    )


@bp.post("/quarantine/<key>/release")
@roles(Role.ADMIN)
@bp.input(ReleaseIn, arg_name="body", unknown=RAISE)
@bp.output(Resolved, status_code=202)
@bp.doc(summary="Release a quarantined study: re-validate and ingest, errors overridden")
def release(key: str, body: dict[str, Any]) -> dict[str, str]:
    identity = IdentityDecision(body["identity"]) if body.get("identity") else None
    orthanc_id = resolve_or_404(release_quarantined, key, identity)
    return {"orthanc_id": orthanc_id, "state": QuarantineState.RELEASED}


@bp.delete("/quarantine/<key>")
@roles(Role.ADMIN)
@bp.output(Resolved)
@bp.doc(summary="Delete a quarantined study from the archive")
def delete(key: str) -> dict[str, str]:
    return {"orthanc_id": resolve_or_404(delete_quarantined, key), "state": QuarantineState.DELETED}


def resolve_or_404(action, key: str, *args: Any) -> str:
    try:
        return action(key, *args)
    except QuarantineError as error:
        abort(error.status, str(error))
    except ArchiveError as error:
        db.session.rollback()
        abort(502, report_archive_error(error))
