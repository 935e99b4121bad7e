"""Admins' pages: the quarantine, the audit trail (with CSV download), user accounts and the
DICOM modalities the archive accepts."""

from __future__ import annotations

import datetime
import io

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from core.accounts import Role, find_password_problems
from core.csv_cells import SafeCsvWriter
from core.identity import IdentityDecision
from core.modalities import ModalityError, check_aet, check_modality
from core.quarantine import QuarantineError
from portal.archive_errors import report_archive_error
from portal.extensions import db
from portal.quarantine import delete_quarantined, release_quarantined
from portal.security import audit, roles, utc_now
from portal.worklist import parse_date
from storage.accounts import (
    AccountError,
    create_user,
    end_sign_ins,
    list_users,
    query_audit,
    set_password,
    set_role,
    unlock_user,
)
from storage.archive import ArchiveClient, ArchiveError
from storage.modalities import (
    add_modality,
    list_modalities,
    remove_modality,
    sync_archive_modalities,
)
from storage.models.accounts import User
from storage.sign_in import find_throttled
from storage.studies import list_quarantine

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="../templates")
AUDIT_COLUMNS = (
    "at",
    "user_email",
    "role",
    "client_ip",
    "action",
    "object_type",
    "object_id",
    "study_uid",
    "outcome",
    "detail",
)


class NewUserForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=255)])
    display_name = StringField("Name", validators=[Length(max=255)])
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value) for r in Role])
    dicom_name = StringField("Name in DICOM (referrers)", validators=[Length(max=324)])
    password = PasswordField("Temporary password", validators=[DataRequired(), Length(max=256)])


class ResetPasswordForm(FlaskForm):
    password = PasswordField("Temporary password", validators=[DataRequired(), Length(max=256)])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value) for r in Role])


class NewModalityForm(FlaskForm):
    aet = StringField("AE title", validators=[DataRequired(), Length(max=64)])
    host = StringField("IP address", validators=[DataRequired(), Length(max=64)])
    port = StringField("Port", validators=[DataRequired(), Length(max=8)])
    description = StringField("Description", validators=[Length(max=512)])


class RemoveModalityForm(FlaskForm):
    aet = StringField("AE title", validators=[DataRequired(), Length(max=64)])


@bp.get("/quarantine")
@roles(Role.ADMIN)
def show_quarantine():
    entries = list_quarantine(db.session)
    audit("view_quarantine", object_type="quarantine")
    db.session.commit()
    return render_template("admin/quarantine.html", entries=entries)


# The page's release buttons: a reported study whose identity changed needs a decision.
RELEASES = {
    "release": None,
    "release-keep": IdentityDecision.KEEP,
    "release-accept": IdentityDecision.ACCEPT,
}


@bp.post("/quarantine/<orthanc_id>/<action>")
@roles(Role.ADMIN)
def resolve_quarantined(orthanc_id: str, action: str):
    try:
        if action in RELEASES:
            release_quarantined(orthanc_id, RELEASES[action])
            flash("Released: the study is being validated and ingested again.", "info")
        elif action == "delete":
            delete_quarantined(orthanc_id)
            flash("Deleted from the archive.", "info")
        else:
            flash(f"Unknown action {action}.", "error")
    except QuarantineError as error:
        flash(str(error), "error")
    except ArchiveError as error:
        flash(report_archive_error(error), "error")
    return redirect(url_for("admin.show_quarantine"))


@bp.get("/audit")
@roles(Role.ADMIN)
def show_audit():
    filters = dict(
        user=request.args.get("user") or None,
        action=request.args.get("action") or None,
        study_uid=request.args.get("study") or None,
    )
    since, until = parse_date(request.args.get("from")), parse_date(request.args.get("to"))
    wants_csv = request.args.get("format") == "csv"
    events, total = query_audit(
        db.session,
        **filters,
        since=to_datetime(since),
        until=to_datetime(until, end_of_day=True),
        page=max(1, request.args.get("page", type=int) or 1),
        per_page=100_000 if wants_csv else 200,
    )
    audit("view_audit", object_type="audit", detail=request.query_string.decode()[:1024])
    db.session.commit()
    if wants_csv:
        return audit_csv(events)
    return render_template("admin/audit.html", events=events, total=total)


@bp.route("/users", methods=["GET", "POST"])
@roles(Role.ADMIN)
def manage_users():
    form = NewUserForm()
    if form.validate_on_submit():
        problems = find_password_problems(form.password.data, email=form.email.data)
        if problems:
            flash("Password refused: it " + "; it ".join(problems), "error")
        else:
            try:
                create_user(
                    db.session,
                    form.email.data,
                    form.password.data,
                    Role(form.role.data),
                    utc_now(),
                    display_name=form.display_name.data,
                    dicom_name=form.dicom_name.data,
                    temporary=True,
                )
            except AccountError as error:
                flash(str(error), "error")
            else:
                audit(
                    "user_add",
                    object_type="user",
                    object_id=form.email.data.lower(),
                    detail=f"role={form.role.data}",
                )
                db.session.commit()
                flash(f"User {form.email.data} added.", "info")
                return redirect(url_for("admin.manage_users"))
    users = list_users(db.session)
    return render_template(
        "admin/users.html",
        form=form,
        users=users,
        throttled=find_throttled(db.session, utc_now()),
        roles=[r.value for r in Role],
    )


@bp.post("/users/<int:user_id>/<action>")
@roles(Role.ADMIN)
def change_user(user_id: int, action: str):
    """Disable, enable or unlock an account; a new temporary password; a new role."""
    user = db.session.get(User, user_id)
    now = utc_now()
    if user is None or action not in ("disable", "enable", "unlock", "password", "role"):
        flash("No such user or action.", "error")
    elif user.id == current_user.user_id and action != "unlock":
        flash(
            "Change your own account on the Password page; another admin changes its role.", "error"
        )
    elif action == "password":
        form = ResetPasswordForm()
        problems = find_password_problems(form.password.data or "", email=user.email)
        if problems:
            flash("Password refused: it " + "; it ".join(problems), "error")
        else:
            set_password(db.session, user, form.password.data, now, temporary=True)
            audit("user_set_password", object_type="user", object_id=user.email, detail="temporary")
            db.session.commit()
            flash(
                f"{user.email} has a temporary password: they choose their own at sign-in.", "info"
            )
    elif action == "role":
        role = RoleForm().role.data
        if role not in {r.value for r in Role}:
            flash("Unknown role.", "error")
        else:
            set_role(db.session, user, Role(role), now)
            audit("user_role", object_type="user", object_id=user.email, detail=f"role={role}")
            db.session.commit()
            flash(f"{user.email} is now {role}; their sessions and tokens have ended.", "info")
    else:
        if action == "unlock":
            unlock_user(db.session, user)
        else:
            user.active = action == "enable"
            if not user.active:
                end_sign_ins(db.session, user, now)
        audit(f"user_{action}", object_type="user", object_id=user.email)
        db.session.commit()
        flash(f"User {user.email} {'unlocked' if action == 'unlock' else action + 'd'}.", "info")
    return redirect(url_for("admin.manage_users"))


@bp.route("/modalities", methods=["GET", "POST"])
@roles(Role.ADMIN)
def manage_modalities():
    form = NewModalityForm()
    if form.validate_on_submit():
        try:
            modality = check_modality(
                form.aet.data, form.host.data, form.port.data, form.description.data
            )
            add_modality(db.session, modality, utc_now())
        except ModalityError as error:
            db.session.rollback()
            flash(str(error), "error")
        else:
            audit(
                "modality_add",
                object_type="modality",
                object_id=modality.aet,
                detail=f"host={modality.host} port={modality.port}",
            )
            db.session.commit()
            flash(f"Modality {modality.aet} registered.", "info")
            apply_modalities_to_archive()
            return redirect(url_for("admin.manage_modalities"))
    return render_template(
        "admin/modalities.html",
        form=form,
        modalities=list_modalities(db.session),
        accept_any=current_app.config["PACS_SETTINGS"].dicom_accept_any,
    )


@bp.post("/modalities/remove")
@roles(Role.ADMIN)
def remove_registered_modality():
    form = RemoveModalityForm()
    if not form.validate_on_submit():
        flash("No AE title given.", "error")
        return redirect(url_for("admin.manage_modalities"))
    try:
        modality = remove_modality(db.session, check_aet(form.aet.data))
    except ModalityError as error:
        db.session.rollback()
        flash(str(error), "error")
    else:
        audit("modality_remove", object_type="modality", object_id=modality.aet)
        db.session.commit()
        flash(f"Modality {modality.aet} removed.", "info")
        apply_modalities_to_archive()
    return redirect(url_for("admin.manage_modalities"))


def apply_modalities_to_archive() -> None:
    """Bring the archive in line with the committed list; a stopped one does so at start."""
    try:
        with ArchiveClient.from_settings(current_app.config["PACS_SETTINGS"], timeout=10) as client:
            sync_archive_modalities(client, list_modalities(db.session))
    except ArchiveError as error:
        flash(f"Saved, but the archive could not be updated now ({error}).", "error")


def audit_csv(events) -> Response:
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer)
    writer.writerow(AUDIT_COLUMNS)
    for event in events:
        writer.writerow([str(getattr(event, c)) for c in AUDIT_COLUMNS])
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit.csv"},
    )


def to_datetime(
    date: datetime.date | None, *, end_of_day: bool = False
) -> datetime.datetime | None:
    if date is None:
        return None
    moment = datetime.datetime.combine(date, datetime.time.max if end_of_day else datetime.time.min)
    return moment.replace(tzinfo=datetime.UTC)
