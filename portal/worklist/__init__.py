"""The radiologists' worklist page, and the home page every role lands on."""

from __future__ import annotations

import datetime

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from core.accounts import ALL_ROLES, WORKLIST_ROLES, Role
from core.assignments import AssignmentError, check_priority_reason
from core.records import Priority, StudyStatus
from portal.extensions import db
from portal.peer_review_service import colleague_priors
from portal.priors import list_visible_priors
from portal.security import audit, audit_study, audit_study_read, roles, utc_now
from storage.accounts import list_radiologists
from storage.archive import ArchiveClient, ArchiveError, ArchiveNotFound
from storage.assignments import assign_study, find_listed_study, set_priority
from storage.models.studies import Study
from storage.orders import find_study_order
from storage.referrals import list_referred_studies
from storage.reports import find_report, list_external_reports
from storage.worklist import (
    SORT_COLUMNS,
    WORKLIST_STATUSES,
    WorklistQuery,
    find_arriving,
    find_next_unread,
    fingerprint_page,
    query_worklist,
)

bp = Blueprint("worklist", __name__, template_folder="../templates")
PER_PAGE_CHOICES = (25, 50, 100)
# The query-string arguments that describe a worklist: they travel on the links from the
# worklist to a study, its report editor and "next unread", so the list goes with the user.
WORKLIST_ARGS = ("status", "modality", "priority", "assignee", "q", "from", "to", "sort", "order")
WORKLIST_POLL_SECONDS = 5  # how often an open worklist asks whether it changed
LANDING_PAGES = {
    Role.REFERRER: "worklist.show_referrals",
    Role.MANAGER: "analytics.show_dashboard",
    Role.RESEARCHER: "research.show_exports",
}


@bp.get("/")
@roles(*ALL_ROLES)
def home():
    """Each role's first page is its work: the worklist, a referrer's reports, the
    dashboards, the research exports."""
    return redirect(url_for(LANDING_PAGES.get(current_user.role, "worklist.show_worklist")))


@bp.get("/referrals")
@roles(Role.REFERRER)
def show_referrals():
    """A referrer's own patients' reported studies; never the unread worklist."""
    studies = list_referred_studies(db.session, current_user.user)
    audit("view_referrals", object_type="referrals", detail=f"{len(studies)} studies")
    db.session.commit()
    return render_template("worklist/referrals.html", studies=studies)


@bp.get("/worklist")
@roles(*WORKLIST_ROLES)
def show_worklist():
    query = parse_worklist_args(request.args)
    page = query_worklist(db.session, query, me=current_user.user)
    audit("view_worklist", detail=request.query_string.decode()[:1024])
    db.session.commit()
    return render_template(
        "worklist/worklist.html",
        page=page,
        etag=fingerprint_page(page),
        poll_seconds=WORKLIST_POLL_SECONDS,
        query=query,
        statuses=WORKLIST_STATUSES,
        priorities=list(Priority),
        sort_columns=SORT_COLUMNS,
        pages=max(1, -(-page.total // query.per_page)),
    )


@bp.get("/worklist/changes")
@roles(*WORKLIST_ROLES)
def show_worklist_changes():
    """What an open worklist polls: the ETag of the same page now, 304 while unchanged.

    A fingerprint, no patient data, so not audited (the page it leads to reload is)."""
    page = query_worklist(db.session, parse_worklist_args(request.args), me=current_user.user)
    etag = fingerprint_page(page)
    response = jsonify(etag=etag, total=page.total)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)


@bp.get("/worklist/next")
@roles(*WORKLIST_ROLES)
def open_next_unread():
    """The report editor of the next unread study of the same list (its filters and order
    in the query string, `after` the study just done); the worklist when none is left."""
    query = parse_worklist_args(request.args)
    after = find_listed_study(db.session, request.args.get("after", ""))
    study = find_next_unread(db.session, query, me=current_user.user, after=after)
    if study is None:
        flash("No unread study is left in this list.", "info")
        return redirect(url_for("worklist.show_worklist", **worklist_args()))
    endpoint = (
        "reports.edit_report" if current_user.role == Role.RADIOLOGIST else "worklist.show_study"
    )
    return redirect(url_for(endpoint, study_uid=study.study_instance_uid, **worklist_args()))


@bp.app_template_global()
def worklist_args() -> dict[str, list[str]]:
    """The worklist arguments of this request, for links that carry the list on."""
    return {name: request.args.getlist(name) for name in WORKLIST_ARGS if name in request.args}


@bp.post("/studies/<study_uid>/assign")
@roles(*WORKLIST_ROLES)
def assign(study_uid: str):
    study = require_listed_study(study_uid, for_update=True)
    action = request.form.get("action")
    assignee = {"take": current_user.email, "assign": request.form.get("assignee")}.get(action)
    try:
        assign_study(db.session, study, current_user.user, assignee or None, utc_now())
    except AssignmentError as error:
        flash(str(error), "error")
        audit_study("assign", study_uid, "denied")
    else:
        audit_study("assign" if assignee else "release", study_uid, detail=f"assignee={assignee}")
    db.session.commit()
    return redirect(request.referrer or url_for("worklist.show_worklist"))


@bp.post("/studies/<study_uid>/priority")
@roles(*WORKLIST_ROLES)
def change_priority(study_uid: str):
    study = require_listed_study(study_uid, for_update=True)
    previous = study.priority
    try:
        reason = check_priority_reason(request.form.get("reason") or "")
        set_priority(study, request.form.get("priority", ""), current_user.user, reason, utc_now())
    except AssignmentError as error:
        flash(str(error), "error")
    else:
        audit_study("priority", study_uid, detail=f"{previous} -> {study.priority}: {reason}")
        db.session.commit()
    return redirect(url_for("worklist.show_study", study_uid=study_uid))


def require_listed_study(study_uid: str, *, for_update: bool = False) -> Study:
    """The listed study or a 404; `for_update` (a writer) locks its row (`find_listed_study`)."""
    study = find_listed_study(db.session, study_uid, for_update=for_update)
    if study is None:
        abort(404)
    return study


def parse_worklist_args(args) -> WorklistQuery:
    """Query-string filters; values that make no sense are dropped, never an error page."""
    statuses = tuple(s for s in args.getlist("status") if s in {x.value for x in StudyStatus})
    sort = args.get("sort", "received_at")
    per_page = args.get("per_page", type=int) or 50
    return WorklistQuery(
        statuses=statuses,
        modality=args.get("modality") or None,
        priority=args.get("priority") or None,
        assignee=args.get("assignee") or None,
        text=(args.get("q") or "").strip()[:64] or None,
        date_from=parse_date(args.get("from")),
        date_to=parse_date(args.get("to")),
        sort=sort if sort in SORT_COLUMNS else "received_at",
        descending=args.get("order", "desc") != "asc",
        page=max(1, args.get("page", type=int) or 1),
        per_page=per_page if per_page in PER_PAGE_CHOICES else 50,
    )


def parse_date(text: str | None) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(text) if text else None
    except ValueError:
        return None


@bp.get("/studies/<study_uid>")
@roles(*WORKLIST_ROLES)
def show_study(study_uid: str):
    """Patient and study details, series with previews, warnings and the timeline."""
    study = require_listed_study(study_uid)
    audit_study("view_study", study_uid)
    db.session.commit()
    radiologists = list_radiologists(db.session) if current_user.role == Role.ADMIN else []
    return render_template(
        "worklist/study.html",
        study=study,
        radiologists=radiologists,
        priorities=list(Priority),
        report=find_report(db.session, study),
        external_reports=list_external_reports(db.session, study),
        arriving=bool(find_arriving(db.session, [study.id])),
        order=find_study_order(db.session, study.id),
        priors=list_visible_priors(study),
        peer_priors=colleague_priors(study) if current_user.role == Role.RADIOLOGIST else [],
    )


@bp.get("/studies/<study_uid>/series/<series_uid>/preview.png")
@roles(*WORKLIST_ROLES)
def show_series_preview(study_uid: str, series_uid: str):
    """A small rendered image of the series, fetched from the archive server-side."""
    study = find_listed_study(db.session, study_uid)
    if study is None or series_uid not in {s.series_instance_uid for s in study.series}:
        abort(404)
    settings = current_app.config["PACS_SETTINGS"]
    try:
        with ArchiveClient.from_settings(settings, timeout=10) as client:
            png = client.render_series_preview(series_uid)
    except ArchiveNotFound:
        abort(404)
    except ArchiveError:
        abort(502)
    audit_study_read("view_series_preview", study_uid)
    db.session.commit()
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
