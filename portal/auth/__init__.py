"""Sign-in and sign-out for the browser pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from core.accounts import ALL_ROLES
from portal.extensions import db
from portal.security import SignedInUser, audit, public, roles, utc_now
from storage.accounts import check_sign_in, revoke_tokens, write_audit

bp = Blueprint("auth", __name__, template_folder="../templates")


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user, problem = check_sign_in(db.session, form.email.data, form.password.data, utc_now())
        if problem:
            audit_failed_login(form.email.data, problem)
            db.session.commit()
            message = (
                "This account is locked after repeated failed sign-ins; try again later."
                if problem == "locked"
                else "Unknown e-mail or wrong password."
            )
            flash(message, "error")
            return render_template("auth/login.html", form=form), 401
        login_user(SignedInUser(user))
        audit("login")
        db.session.commit()
        return redirect(safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@roles(*ALL_ROLES)
def logout():
    audit("logout")
    db.session.commit()
    logout_user()
    return redirect(url_for("auth.login"))


@bp.post("/logout-everywhere")
@roles(*ALL_ROLES)
def logout_everywhere():
    """Revoke every token and every other session of this user."""
    revoke_tokens(db.session, current_user.user, utc_now())
    audit("logout_everywhere")
    db.session.commit()
    logout_user()
    return redirect(url_for("auth.login"))


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
