"""`POST /api/v1/imports`: the upload page's import for programs (multipart, field `files`)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import DateTime, Dict, Float, Integer, List, Nested, String
from flask import g
from flask_login import current_user

from core.accounts import Role
from portal.api import bp
from portal.extensions import db
from portal.import_service import (
    IMPORT_REFUSAL,
    UploadError,
    accepts_uploads,
    describe_import,
    find_visible_import,
    import_uploads,
    may_import,
)
from portal.security import audit, roles


class ImportedFileOut(Schema):
    name = String()
    outcome = String(metadata={"description": "stored, already_stored, rejected or ignored"})
    size = Integer()
    refusal = String(allow_none=True)
    reason = String()
    sop_instance_uid = String()
    study_instance_uid = String()


class ImportedStudyOut(Schema):
    study_instance_uid = String()
    place = String(metadata={"description": "worklist, quarantine or pending (not ingested yet)"})
    url = String(allow_none=True)


class ImportOut(Schema):
    id = Integer()
    at = DateTime()
    actor = String()
    source = String()
    counts = Dict(keys=String(), values=Integer())
    elapsed_seconds = Float()
    files = List(Nested(ImportedFileOut))
    studies = List(Nested(ImportedStudyOut))


def require_import_right() -> None:
    if not may_import(current_user):
        audit("access", "denied", object_type="route", object_id="/api/v1/imports")
        db.session.commit()
        abort(403, IMPORT_REFUSAL)


@bp.post("/imports")
@roles(Role.ADMIN, Role.RADIOLOGIST)
@accepts_uploads
@bp.output(ImportOut, status_code=201)
@bp.doc(
    summary="Import DICOM files, folders (relative paths as file names) and ZIP archives",
    description="multipart/form-data with one `files` part per file; up to PACS_IMPORT_MAX_MB "
    "in all (413 beyond). Answers the summary: one entry per file, and the studies.",
)
def create_import() -> dict[str, Any]:
    # enforce_access checked the import right before anything read the body.
    try:
        # The upload page sends its files here with the session cookie.
        run = import_uploads("api" if g.get("pacs_bearer") else "portal")
    except UploadError as error:
        abort(400, str(error))
    return describe_import(run)


@bp.get("/imports/<int:import_id>")
@roles(Role.ADMIN, Role.RADIOLOGIST)
@bp.output(ImportOut)
@bp.doc(summary="An import's summary, with where its studies are now")
def get_import(import_id: int) -> dict[str, Any]:
    require_import_right()
    run = find_visible_import(import_id)
    if run is None:
        abort(404, "no such import")
    view = describe_import(run)
    audit("view_import", object_type="import", object_id=str(run.id))
    db.session.commit()
    return view
