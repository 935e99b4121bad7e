"""Research pages: define a cohort (counts only), request an export, follow it, download it;
admins approve or reject requests here too."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from core.accounts import Role
from core.cohorts import CohortError, parse_cohort
from core.deidentify import Option, ProfileError
from core.exports import MAX_REASON_LENGTH, PENDING_STATES, PurposeError, check_purpose
from portal.export_service import (
    decide,
    describe_export,
    request_export,
    size_cohort,
    visible_exports,
)
from portal.security import roles

bp = Blueprint("research", __name__, url_prefix="/research", template_folder="../templates")
COHORT_FIELDS = (
    "modality",
    "date_from",
    "date_to",
    "body_part",
    "description_contains",
    "institution",
)
OPTION_LABELS = {
    Option.MODIFIED_DATES: "Retain longitudinal information, dates shifted per patient",
    Option.PATIENT_CHARACTERISTICS: "Retain patient characteristics (sex, age, size, weight)",
    Option.DEVICE_IDENTITY: "Retain device identity",
    Option.INSTITUTION_IDENTITY: "Retain institution identity",
    Option.CLEAN_DESCRIPTORS: "Clean descriptors (keep study and series descriptions, cleaned)",
    Option.STRUCTURED_CONTENT: "Include final reports (SR), their text cleaned",
    Option.SAFE_PRIVATE: "Retain safe private attributes",
}


def cohort_from(form: MultiDict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {name: form.get(name, "").strip() for name in COHORT_FIELDS}
    data["has_final_report"] = form.get("has_final_report") == "on"
    return data


def profile_from(form: MultiDict[str, str]) -> str:
    chosen = [option.value for option in Option if form.get(f"option-{option.value}") == "on"]
    return ",".join(["basic", *chosen])


def render_page(form: MultiDict[str, str], size: Any = None, status: int = 200) -> Any:
    exports = [describe_export(export) for export in visible_exports()]
    running = any(export["state"] in PENDING_STATES for export in exports)
    return (
        render_template(
            "research/exports.html",
            form=form,
            size=size,
            exports=exports,
            options=OPTION_LABELS,
            refresh=running,
        ),
        status,
    )


@bp.get("")
@roles(Role.RESEARCHER, Role.ADMIN)
def show_exports() -> Any:
    return render_page(MultiDict())


@bp.post("/size")
@roles(Role.RESEARCHER, Role.ADMIN)
def measure_cohort() -> Any:
    try:
        size = size_cohort(parse_cohort(cohort_from(request.form)))
    except CohortError as error:
        flash(str(error), "error")
        return render_page(request.form, status=422)
    return render_page(request.form, size)


@bp.post("/requests")
@roles(Role.RESEARCHER, Role.ADMIN)
def submit_request() -> Any:
    try:
        purpose = check_purpose(request.form.get("purpose", ""))
        export = request_export(
            parse_cohort(cohort_from(request.form)), profile_from(request.form), purpose
        )
    except (PurposeError, CohortError, ProfileError) as error:
        flash(str(error), "error")
        return render_page(request.form, status=422)
    flash(f"Request {export.id} submitted: an admin will review it.", "info")
    return redirect(url_for("research.show_exports"))


@bp.post("/exports/<int:export_id>/decision")
@roles(Role.ADMIN)
def decide_request(export_id: int) -> Any:
    approve = request.form.get("decision") == "approve"
    reason = request.form.get("reason", "").strip()[:MAX_REASON_LENGTH]
    if not approve and not reason:
        flash("A rejection needs a reason.", "error")
        return redirect(url_for("research.show_exports"))
    decide(export_id, approve=approve, reason=reason)
    flash(f"Export {export_id} {'approved' if approve else 'rejected'}.", "info")
    return redirect(url_for("research.show_exports"))
