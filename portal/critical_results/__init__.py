"""Critical results in the portal: the "Critical results" page (the referring physician's,
the on-call contact's, the radiologist's, admins'), one-click acknowledgement and the
radiologist's record of a telephone communication. The API (portal/api/critical_results.py)
calls the same actions."""

from __future__ import annotations

import datetime

from apiflask import abort
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from core.accounts import CLINICAL_READERS, Role
from core.critical_results import (
    LABELS,
    CriticalCategory,
    CriticalResultError,
    TelephoneCommunication,
    check_communication,
    parse_category,
)
from core.reports import ReportError, ReportStatus
from portal.extensions import db
from portal.security import audit, audit_study, roles, utc_now
from storage.assignments import find_listed_study
from storage.critical_results import (
    acknowledge,
    check_may_acknowledge,
    check_recorder,
    count_open_for,
    find_critical_result,
    find_critical_result_by_id,
    flag_critical_result,
    list_critical_results,
    may_see,
    record_communication,
)
from storage.models.critical_results import CriticalResult
from storage.models.reports import ReportDocument
from storage.models.studies import Study
from storage.reports import add_addendum, find_report, view_report

bp = Blueprint("critical_results", __name__, template_folder="../templates")


def oncall() -> str:
    return current_app.config["PACS_SETTINGS"].critical_oncall


@bp.app_template_global()
def critical_waiting() -> int:
    """Unacknowledged critical results waiting for the signed-in user (the nav's badge)."""
    if not current_user.is_authenticated or current_user.role not in CLINICAL_READERS:
        return 0
    return count_open_for(db.session, current_user.user, oncall())


@bp.app_template_global()
def critical_label(category: str) -> str:
    return LABELS[CriticalCategory(category)]


@bp.get("/critical-results")
@roles(*CLINICAL_READERS)
def show_critical_results():
    """Unacknowledged results first (escalated ones before the rest), each with its report."""
    results = list_critical_results(db.session, current_user.user, oncall())
    audit("view_critical_results", object_type="critical_results", detail=f"{len(results)}")
    db.session.commit()
    return render_template(
        "critical_results/list.html",
        results=results,
        views={r.id: view_report(r.report) for r in results},
        now=utc_now(),
        oncall=oncall(),
        categories=list(CriticalCategory),
    )


@bp.post("/critical-results/<int:result_id>/acknowledge")
@roles(*CLINICAL_READERS)
def acknowledge_from_page(result_id: int):
    try:
        acknowledge_result(result_id)
    except CriticalResultError as error:
        flash(str(error), "error")
    return redirect(url_for("critical_results.show_critical_results"))


@bp.post("/studies/<study_uid>/critical-result/communications")
@roles(Role.RADIOLOGIST)
def record_call_from_page(study_uid: str):
    try:
        at = datetime.datetime.fromisoformat(request.form.get("communicated_at", ""))
    except ValueError:
        at = None
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=datetime.UTC)  # the form's time is UTC, as the page says
    try:
        record_call(
            study_uid, request.form.get("recipient"), at, request.form.get("read_back") == "yes"
        )
    except CriticalResultError as error:
        flash(str(error), "error")
    else:
        flash("The communication is recorded.", "info")
    return redirect(url_for("reports.edit_report", study_uid=study_uid))


# -- the actions, shared with the API ---------------------------------------------------------


def flag_on_signature(study: Study, document: ReportDocument, category: str | None) -> None:
    """At signing: flag the report critical when the radiologist said so (in the signature's
    transaction); audited."""
    if category is None:
        return
    settings = current_app.config["PACS_SETTINGS"]
    result = flag_critical_result(
        db.session,
        study,
        document,
        parse_category(category),
        current_user.user,
        settings.critical_limits,
    )
    if result is not None:
        db.session.flush()
        audit(
            "critical_result.flag",
            object_type="critical_result",
            object_id=str(result.id),
            study_uid=study.study_instance_uid,
            detail=f"{result.category}, due {result.due_at.isoformat()}",
        )


def load_visible_result(result_id: int) -> CriticalResult:
    result = find_critical_result_by_id(db.session, result_id)
    if result is None or not may_see(result, current_user.user, oncall()):
        audit(
            "critical_result.read",
            "denied",
            object_type="critical_result",
            object_id=str(result_id),
        )
        db.session.commit()
        abort(404, f"no critical result {result_id} for you")
    return result


def acknowledge_result(result_id: int) -> CriticalResult:
    result = load_visible_result(result_id)
    fields = dict(object_type="critical_result", object_id=str(result.id))
    try:
        check_may_acknowledge(result, current_user.user, oncall())
    except CriticalResultError as error:
        audit("critical_result.acknowledge", "denied", detail=str(error), **fields)
        db.session.commit()
        raise
    changed = acknowledge(db.session, result, current_user.user, utc_now())
    audit(
        "critical_result.acknowledge",
        study_uid=result.study.study_instance_uid,
        detail="acknowledged" if changed else "already acknowledged",
        **fields,
    )
    db.session.commit()
    return result


def record_call(
    study_uid: str, recipient: object, communicated_at: object, read_back: object
) -> CriticalResult:
    """Document a telephone communication. After the final signature it is also a signed
    addendum (a new SR carries it); before, the next signature's SR does."""
    study = find_listed_study(db.session, study_uid[:64])
    report = find_report(db.session, study) if study is not None else None
    result = find_critical_result(db.session, report)
    if study is None or result is None:
        abort(404, "this study has no critical result")
    now = utc_now()
    try:
        check_recorder(result, current_user.user, study)
        name, at, confirmed = check_communication(recipient, communicated_at, read_back, now)
    except CriticalResultError as error:
        audit_study("critical_result.communication", study_uid, "denied", detail=str(error))
        db.session.commit()
        raise
    call = record_communication(result, current_user.user, name, at, confirmed, now)
    document = None
    if report.status == ReportStatus.FINAL:
        text = TelephoneCommunication(
            call.recipient, call.communicated_at, call.read_back, call.recorded_by_name
        ).describe()
        try:
            document = add_addendum(db.session, study, current_user.user, text, now)
        except ReportError as error:
            db.session.rollback()
            audit_study("critical_result.communication", study_uid, "denied", detail=str(error))
            db.session.commit()
            refusal = CriticalResultError(str(error))
            refusal.status = error.status  # 403 (not the study's radiologist), 409...
            raise refusal from error
    audit_study(
        "critical_result.communication",
        study_uid,
        detail=f"to {name} at {at.isoformat()}, read-back {'yes' if confirmed else 'no'}",
    )
    db.session.commit()
    if document is not None:
        current_app.extensions["pacs_report_delivery"].submit(document.id)
    return result
