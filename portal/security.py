"""Who may reach which route: every view declares its roles, anything undeclared is denied.

Browsers carry a random session key in the signed cookie; the session itself lives in
the database (storage/sessions.py), so signing out, a new password or role, idle time and
the absolute lifetime end it on the server. Programs send `Authorization: Bearer <token>`.
Cookie-authenticated writes need a CSRF token; bearer-token calls cannot be forged by
another site. A user with a temporary password reaches only the password page.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, jsonify, redirect, render_template, request, url_for
from flask_login import UserMixin, current_user

from core.accounts import Role
from portal.extensions import csrf, db, login_manager
from portal.import_service import IMPORT_REFUSAL, may_import
from storage.accounts import find_token_user, has_audit_since, write_audit
from storage.models.accounts import User
from storage.sessions import SessionLimits, find_live_session

View = TypeVar("View", bound=Callable[..., Any])
PUBLIC = "public"
# Framework endpoints that carry no patient data.
PUBLIC_ENDPOINTS = frozenset({"static", "openapi.spec"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_REMEMBERED_READS = 10_000  # (user, action, study, hour) audited, per portal process
# What a user with a temporary password may reach until they have chosen their own.
TEMPORARY_PASSWORD_ENDPOINTS = frozenset({"auth.change_password", "auth.logout"})


def roles(*allowed: Role) -> Callable[[View], View]:
    """Declare which roles may call the view."""

    def declare(view: View) -> View:
        view.pacs_access = frozenset(allowed)  # type: ignore[attr-defined]
        return view

    return declare


def public(view: View) -> View:
    """Declare a view open to anyone (it must check its own credentials if it has any)."""
    view.pacs_access = PUBLIC  # type: ignore[attr-defined]
    return view


class SignedInUser(UserMixin):
    """Flask-Login's view of the signed-in user: what every request needs, the row on demand."""

    def __init__(
        self,
        user_id: int,
        email: str,
        role: str,
        *,
        session_key: str = "",
        password_temporary: bool = False,
    ) -> None:
        self.user_id = user_id
        self.email = email
        self.role = Role(role)
        self.session_key = session_key
        self.password_temporary = password_temporary

    @classmethod
    def of(cls, user: User, session_key: str = "") -> SignedInUser:
        return cls(
            user.id,
            user.email,
            user.role,
            session_key=session_key,
            password_temporary=user.password_temporary,
        )

    @property
    def user(self) -> User:
        """The user's row, loaded when a view needs more than id, e-mail and role."""
        return db.session.get(User, self.user_id)

    def get_id(self) -> str:
        return self.session_key


def session_limits() -> SessionLimits:
    settings = current_app.config["PACS_SETTINGS"]
    return SessionLimits(
        idle=datetime.timedelta(minutes=settings.session_idle_minutes),
        lifetime=datetime.timedelta(hours=settings.session_max_hours),
    )


@login_manager.user_loader
def load_session_user(session_key: str) -> SignedInUser | None:
    """The session check of every cookie-authenticated request (the viewer's frames too):
    one indexed lookup, a write at most once a minute per session."""
    live = find_live_session(db.session, session_key, session_limits(), utc_now())
    db.session.commit()  # the check's own transaction: an expired session ended, last-seen
    if live is None:
        return None
    return SignedInUser(
        live.user_id,
        live.email,
        live.role,
        session_key=live.key,
        password_temporary=live.password_temporary,
    )


def load_token_user(req: Any) -> SignedInUser | None:
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    user = find_token_user(db.session, token.strip(), utc_now())
    if user is None:
        return None
    g.pacs_bearer = True
    return SignedInUser.of(user)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def is_api_request() -> bool:
    """Programs' routes answer errors in JSON; pages redirect or render."""
    return request.path.startswith(("/api/", "/dicom-web/"))


def audit(action: str, outcome: str = "success", **fields: str) -> None:
    """Record an audit event for the current request (committed with the request's work)."""
    user = current_user.user if current_user.is_authenticated else None
    write_audit(
        db.session,
        action=action,
        outcome=outcome,
        now=utc_now(),
        user=user,
        client_ip=request.remote_addr or "",
        **fields,
    )


def audit_study(action: str, study_uid: str, outcome: str = "success", detail: str = "") -> None:
    """An audit event about one study."""
    audit(
        action,
        outcome,
        object_type="study",
        object_id=study_uid,
        study_uid=study_uid,
        detail=detail,
    )


def audit_study_read(action: str, study_uid: str) -> None:
    """Audit a read of a study at most once per user, study and hour, however many requests.

    Each portal process remembers what it has audited; a miss asks the database, so several
    processes add at most one event each.
    """
    hour = utc_now().replace(minute=0, second=0, microsecond=0)
    key = (current_user.email, action, study_uid, hour)
    seen: dict = current_app.extensions.setdefault("pacs_audited_reads", {})
    if key in seen:
        return
    if not has_audit_since(db.session, current_user.email, action, study_uid, hour):
        audit_study(action, study_uid)
    seen[key] = True
    if len(seen) > MAX_REMEMBERED_READS:
        seen.pop(next(iter(seen)))


def deny(status: int, message: str) -> Any:
    if is_api_request():
        response = jsonify({"error": message, "detail": None})
        response.status_code = status
        return response
    if status == 401:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return render_template("errors/denied.html", message=message), status


def enforce_access() -> Any:
    """before_request: the declared roles of the endpoint decide; undeclared means denied."""
    if request.endpoint is None:
        return None  # 404/405: nothing to protect
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if "Authorization" in request.headers:
        # A bearer token speaks for itself, whatever session cookie comes with it.
        g._login_user = load_token_user(request) or login_manager.anonymous_user()
    view = current_app.view_functions[request.endpoint]
    access = getattr(view, "pacs_access", None)
    if access == PUBLIC:
        return None
    if access is None:
        return deny(403, "this route declares no roles and is closed")
    if not current_user.is_authenticated:
        return deny(401, "sign in first")
    if current_user.password_temporary and request.endpoint not in TEMPORARY_PASSWORD_ENDPOINTS:
        if is_api_request():
            return deny(403, "the password is temporary: choose your own in the portal first")
        return redirect(url_for("auth.change_password", next=request.full_path.rstrip("?")))
    # Who may, before anything reads the body (an upload's can be gigabytes): the role,
    # the import right, then the CSRF token (upload routes find it without the body).
    if current_user.role not in access:
        audit("access", "denied", object_type="route", object_id=request.path)
        db.session.commit()
        return deny(403, f"the {current_user.role} role may not use this page")
    if getattr(view, "pacs_uploads", False) and not may_import(current_user):
        audit("access", "denied", object_type="route", object_id=request.path)
        db.session.commit()
        return deny(403, IMPORT_REFUSAL)
    if request.method in UNSAFE_METHODS and not g.get("pacs_bearer"):
        csrf.protect()
    return None
