"""Report pages: the editor beside the images, the clean read page and its PDF, and the
admins' template editor. Every write of the editor goes through the API (portal/api/reports.py)."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from core.accounts import CLINICAL_READERS, Role
from core.critical_results import LABELS
from core.report_templates import suggest_template
from core.reports import SECTIONS, ReportError, ReportStatus, make_etag
from portal.extensions import db
from portal.peer_review_service import colleague_priors
from portal.priors import list_visible_priors
from portal.report_access import load_readable_report
from portal.reports.pdf import render_report_pdf
from portal.security import audit, audit_study, roles, utc_now
from portal.worklist import require_listed_study
from storage.critical_results import find_critical_result
from storage.models.reports import ReportTemplate
from storage.reports import (
    as_spec,
    find_report,
    find_template,
    list_templates,
    update_template,
    view_report,
)

bp = Blueprint("reports", __name__, template_folder="../templates")


@bp.get("/studies/<study_uid>/report/edit")
@roles(Role.RADIOLOGIST)
def edit_report(study_uid: str):
    """The editor: sections, templates, autosave, signing; the images open beside it."""
    study = require_listed_study(study_uid)
    report = find_report(db.session, study)
    templates = list_templates(db.session)
    audit_study("open_report_editor", study_uid)
    db.session.commit()
    return render_template(
        "reports/editor.html",
        study=study,
        report=report,
        view=view_report(report) if report else None,
        sections=SECTIONS,
        templates=templates,
        template_data={t.key: {"name": t.name, "sections": t.sections} for t in templates},
        suggested=suggest_template(
            [as_spec(t) for t in templates], study.modality, study.body_part
        ),
        etag=make_etag(report.version if report else 0),
        is_final=report is not None and report.status == ReportStatus.FINAL,
        may_sign=study.assignee_id in (None, current_user.user.id),
        priors=list_visible_priors(study),
        critical=find_critical_result(db.session, report),
        critical_labels={c.value: label for c, label in LABELS.items()},
        peer_priors=colleague_priors(study),
    )


@bp.get("/studies/<study_uid>/report")
@roles(*CLINICAL_READERS)
def show_report(study_uid: str):
    """The report as readers see it: signed text, addenda, who signed and when."""
    study, report = load_readable_report(require_listed_study(study_uid))
    audit_study("view_report", study_uid)
    db.session.commit()
    return render_template(
        "reports/report.html",
        study=study,
        view=view_report(report) if report else None,
        sections=SECTIONS,
        priors=list_visible_priors(study),
    )


@bp.get("/studies/<study_uid>/report.pdf")
@roles(*CLINICAL_READERS)
def download_report_pdf(study_uid: str):
    study, report = load_readable_report(require_listed_study(study_uid))
    if report is None or not report.documents:
        abort(404, "the report has not been signed yet")
    audit_study("download_report_pdf", study_uid)
    db.session.commit()
    settings = current_app.config["PACS_SETTINGS"]
    pdf = render_report_pdf(
        study,
        view_report(report),
        department=settings.department_name,
        address=settings.department_address,
    )
    response = Response(pdf, mimetype="application/pdf")
    name = f"report-{study.accession_number or study.id}.pdf"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.get("/admin/report-templates")
@roles(Role.ADMIN)
def show_templates():
    templates = list_templates(db.session)
    audit("view_report_templates", object_type="report_templates")
    db.session.commit()
    return render_template("reports/templates.html", templates=templates, sections=SECTIONS)


@bp.post("/admin/report-templates/<key>")
@roles(Role.ADMIN)
def save_template(key: str):
    """Save an edited template, or create it when the key is new ("new" form)."""
    template = find_template(db.session, key)
    if template is None:
        if key != "new":
            abort(404)
        template = create_template(request.form.get("key", ""))
        if template is None:
            return redirect(url_for("reports.show_templates"))
    try:
        update_template(
            db.session,
            template,
            name=request.form.get("name", ""),
            modality=request.form.get("modality", ""),
            body_part=request.form.get("body_part", ""),
            sections={name: request.form.get(name, "") for name in SECTIONS},
            actor=current_user.user,
            now=utc_now(),
        )
    except ReportError as error:
        db.session.rollback()
        flash(str(error), "error")
        return redirect(url_for("reports.show_templates"))
    audit("report_template_save", object_type="report_template", object_id=template.key)
    db.session.commit()
    flash(f"Template {template.name} saved.", "info")
    return redirect(url_for("reports.show_templates", _anchor=f"template-{template.key}"))


def create_template(key: str) -> ReportTemplate | None:
    key = key.strip().lower()
    if not key or len(key) > 64 or not all(c.isalnum() or c == "-" for c in key) or key == "new":
        flash("A template key is 1 to 64 letters, digits or dashes.", "error")
        return None
    if find_template(db.session, key) is not None:
        flash(f"There is already a template {key}.", "error")
        return None
    template = ReportTemplate(key=key, name=key, updated_at=utc_now())
    db.session.add(template)
    return template
