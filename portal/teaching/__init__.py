"""Teaching file pages: the collection (search), a case (its text, its images in the viewer,
the author's edits), a new case from a study, and the collection's ZIP. Roles are the
service's (portal/teaching_service.py)."""

from __future__ import annotations

from apiflask import HTTPError
from flask import (
    Blueprint,
    after_this_request,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from core.accounts import Role
from core.teaching import MAX_DIAGNOSIS, MAX_FINDINGS, MAX_TITLE, Difficulty
from portal import teaching_service as service
from portal.security import roles
from portal.worklist import require_listed_study

bp = Blueprint("teaching", __name__, template_folder="../templates")
READERS = (Role.RADIOLOGIST, Role.RESEARCHER, Role.ADMIN)
SEARCH_FIELDS = ("text", "keyword", "modality", "diagnosis")


@bp.app_context_processor
def teaching_vocabulary() -> dict[str, object]:
    return {
        "DIFFICULTIES": list(Difficulty),
        "MAX_TEACHING_TITLE": MAX_TITLE,
        "MAX_TEACHING_DIAGNOSIS": MAX_DIAGNOSIS,
        "MAX_TEACHING_FINDINGS": MAX_FINDINGS,
    }


@bp.get("/teaching")
@roles(*READERS)
def show_collection():
    cases = service.search(request.args)
    return render_template(
        "teaching/collection.html",
        cases=cases,
        filters={name: request.args.get(name, "") for name in SEARCH_FIELDS},
    )


@bp.get("/teaching/export.zip")
@roles(*READERS)
def export_collection():
    """The cases the search finds (every ready case without one), as one ZIP."""
    path = service.export_zip(service.search(request.args))

    @after_this_request
    def remove_file(response):
        path.unlink(missing_ok=True)
        return response

    return send_file(
        path, mimetype="application/zip", as_attachment=True, download_name="teaching-files.zip"
    )


@bp.get("/teaching/<int:case_id>")
@roles(*READERS)
def show_case(case_id: int):
    case = service.read(case_id)
    return render_template("teaching/case.html", case=case, view=service.describe(case))


@bp.post("/teaching/<int:case_id>")
@roles(Role.RADIOLOGIST)
def edit_case(case_id: int):
    try:
        service.edit(case_id, request.form)
    except HTTPError as error:
        flash(f"Not saved: {error.message}", "error")
    else:
        flash("Teaching case saved.", "info")
    return redirect(url_for("teaching.show_case", case_id=case_id))


@bp.post("/teaching/<int:case_id>/retire")
@roles(Role.RADIOLOGIST, Role.ADMIN)
def retire_case(case_id: int):
    try:
        service.retire(case_id)
    except HTTPError as error:
        flash(f"Not retired: {error.message}", "error")
        return redirect(url_for("teaching.show_case", case_id=case_id))
    flash("Teaching case retired: it is no longer in the collection.", "info")
    return redirect(url_for("teaching.show_collection"))


@bp.post("/teaching/<int:case_id>/copy")
@roles(Role.RADIOLOGIST)
def copy_again(case_id: int):
    try:
        case = service.retry_copy(case_id)
    except HTTPError as error:
        flash(f"Not copied: {error.message}", "error")
    else:
        flash(f"Copy {case.state}: {case.instances} instances.", "info")
    return redirect(url_for("teaching.show_case", case_id=case_id))


@bp.get("/studies/<study_uid>/teaching")
@roles(Role.RADIOLOGIST)
def new_case(study_uid: str):
    study = require_listed_study(study_uid)
    return render_template("teaching/new.html", study=study, form={}, chosen=[])


@bp.post("/studies/<study_uid>/teaching")
@roles(Role.RADIOLOGIST)
def create_case(study_uid: str):
    study = require_listed_study(study_uid)
    try:
        case = service.create(study_uid, request.form.getlist("series"), request.form)
    except HTTPError as error:
        flash(f"Not created: {error.message}", "error")
        chosen = request.form.getlist("series")
        return render_template(
            "teaching/new.html", study=study, form=request.form, chosen=chosen
        ), 422
    if case.state == "ready":
        flash(f"Teaching case created: {case.instances} images copied de-identified.", "info")
    else:
        flash(f"Teaching case recorded, but the copy {case.state}: {case.error}", "error")
    return redirect(url_for("teaching.show_case", case_id=case.id))
