"""Sign-in, sign-out and one's own password, for the browser pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from core.accounts import ALL_ROLES, find_password_problems
from portal.extensions import db
from portal.security import SignedInUser, audit, public, roles, session_limits, utc_now
from storage.accounts import check_sign_in, end_sign_ins, set_password, write_audit
from storage.models.accounts import User
from storage.sessions import end_session, purge_expired_sessions, start_session

bp = Blueprint("auth", __name__, template_folder="../templates")


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=256)])
    new = PasswordField("New password", validators=[DataRequired(), Length(max=256)])
    repeat = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new", message="The two new passwords differ.")],
    )


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm()
    if form.validate_on_submit():
        now = utc_now()
        result = check_sign_in(
            db.session, form.email.data, form.password.data, request.remote_addr or "", now
        )
        if result.user is None:
            audit_failed_login(form.email.data, result.problem)
            db.session.commit()
            if result.problem == "throttled":
                flash(
                    f"Too many failed sign-ins: try again in {result.retry_after} seconds.",
                    "error",
                )
                response = make_response(render_template("auth/login.html", form=form), 429)
                response.headers["Retry-After"] = str(result.retry_after)
                return response
            flash("Unknown e-mail or wrong password.", "error")
            return render_template("auth/login.html", form=form), 401
        begin_session(result.user)
        audit("login")
        db.session.commit()
        if result.user.password_temporary:
            flash("Your password is temporary: choose your own to continue.", "info")
            return redirect(url_for("auth.change_password", next=request.args.get("next")))
        return redirect(safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/account/password", methods=["GET", "POST"])
@roles(*ALL_ROLES)
def change_password():
    """Users change their own password (and must, after an admin set a temporary one)."""
    form = PasswordForm()
    if form.validate_on_submit():
        user = current_user.user
        problems = find_password_problems(form.new.data, email=user.email)
        # The current password is checked as a sign-in: a stolen cookie cannot guess it freely.
        check = check_sign_in(
            db.session, user.email, form.current.data, request.remote_addr or "", utc_now()
        )
        if check.problem == "throttled":
            flash(f"Too many wrong passwords: try again in {check.retry_after} seconds.", "error")
        elif check.user is None:
            flash("The current password is wrong.", "error")
        elif form.new.data == form.current.data:
            flash("The new password must differ from the current one.", "error")
        elif problems:
            flash("Password refused: it " + "; it ".join(problems), "error")
        else:
            set_password(db.session, user, form.new.data, utc_now(), temporary=False)
            audit("password_change", object_type="user", object_id=user.email)
            begin_session(user)  # every other session and token has ended
            db.session.commit()
            flash("Your password is changed; you are signed out everywhere else.", "info")
            return redirect(safe_next(request.args.get("next")))
        audit("password_change", "denied", object_type="user", object_id=user.email)
        db.session.commit()
        return render_template("auth/password.html", form=form), 400
    for errors in form.errors.values():
        for error in errors:
            flash(error, "error")
    return render_template("auth/password.html", form=form)


@bp.post("/logout")
@roles(*ALL_ROLES)
def logout():
    audit("logout")
    end_session(db.session, current_user.session_key)
    db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.post("/logout-everywhere")
@roles(*ALL_ROLES)
def logout_everywhere():
    """Revoke every token and end every session of this user."""
    end_sign_ins(db.session, current_user.user, utc_now())
    audit("logout_everywhere")
    db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


def begin_session(user: User) -> None:
    """A new server-side session and a new cookie: nothing from before sign-in carries over
    (no session fixation). A session this browser had before ends."""
    if current_user.is_authenticated and current_user.session_key:
        end_session(db.session, current_user.session_key)
    session.clear()
    now = utc_now()
    purge_expired_sessions(db.session, session_limits(), now)
    key = start_session(db.session, user, now)
    login_user(SignedInUser.of(user, key))


def audit_failed_login(email: str, problem: str) -> None:
    write_audit(
        db.session,
        action="login",
        outcome="denied",
        now=utc_now(),
        email=email.strip().lower()[:255],
        client_ip=request.remote_addr or "",
        detail=problem,
    )


def safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would hand sessions to phishing pages."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("worklist.home")
