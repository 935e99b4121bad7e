"""The upload page: drop files, folders or ZIP archives; see what became of each file."""

from __future__ import annotations

import datetime

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from core.accounts import Role
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
from portal.security import audit, deny, is_api_request, roles, utc_now
from storage.models.imports import ImportRun

bp = Blueprint("imports", __name__, url_prefix="/imports", template_folder="../templates")
REFRESH_WHILE_PENDING = datetime.timedelta(minutes=10)
RECENT_IMPORTS = 20


def refuse_unless_allowed():
    """Radiologists import only when PACS_IMPORT_RADIOLOGISTS allows it."""
    if may_import(current_user):
        return None
    audit("access", "denied", object_type="route", object_id=request.path)
    db.session.commit()
    return deny(403, IMPORT_REFUSAL)


@bp.get("")
@roles(Role.ADMIN, Role.RADIOLOGIST)
def show_upload():
    refusal = refuse_unless_allowed()
    if refusal is not None:
        return refusal
    return render_upload_page()


@bp.post("")
@roles(Role.ADMIN, Role.RADIOLOGIST)
@accepts_uploads
def upload():
    # enforce_access checked the import right before anything read the body.
    try:
        run = import_uploads("portal")
    except UploadError as error:
        flash(str(error), "error")
        return redirect(url_for("imports.show_upload"))
    return redirect(url_for("imports.show_import", import_id=run.id))


@bp.get("/<int:import_id>")
@roles(Role.ADMIN, Role.RADIOLOGIST)
def show_import(import_id: int):
    refusal = refuse_unless_allowed()
    if refusal is not None:
        return refusal
    run = find_visible_import(import_id)
    if run is None:
        return deny(404, "no such import")
    view = describe_import(run)
    audit("view_import", object_type="import", object_id=str(run.id))
    db.session.commit()
    pending = any(study["place"] == "pending" for study in view["studies"])
    refresh = pending and utc_now() - run.at < REFRESH_WHILE_PENDING
    return render_template("imports/summary.html", run=view, refresh=refresh)


def render_upload_page(status: int = 200):
    query = select(ImportRun).order_by(ImportRun.id.desc()).limit(RECENT_IMPORTS)
    if current_user.role != Role.ADMIN:
        query = query.where(ImportRun.user_id == current_user.user.id)
    recent = db.session.scalars(query).all()
    limit_mb = current_app.config["PACS_SETTINGS"].import_max_mb
    return render_template("imports/upload.html", recent=recent, limit_mb=limit_mb), status


@bp.app_errorhandler(RequestEntityTooLarge)
def refuse_too_large(error: RequestEntityTooLarge):
    """413 with the limit that applies, as JSON on the API and on the upload page otherwise."""
    settings = current_app.config["PACS_SETTINGS"]
    if request.accepts_uploads:
        message = (
            f"the upload is larger than the limit of {settings.import_max_mb} MB "
            "(PACS_IMPORT_MAX_MB): send fewer files at a time or raise the limit"
        )
    else:
        message = f"the request is larger than the {request.max_content_length} bytes allowed"
    if is_api_request() or not request.accepts_uploads or not current_user.is_authenticated:
        return deny(413, message)
    flash(message, "error")
    return render_upload_page(413)
