"""Flask extensions, created unbound and `init_app`-ed by the factory."""

from __future__ import annotations

from flask import request
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from storage.models import Base

# Views commit their audit event before rendering: keep what they loaded (no reload per row).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
login_manager = LoginManager()


class PortalCSRFProtect(CSRFProtect):
    """Flask-WTF's CSRF check, which never reads an upload's body to find the token.

    Flask-WTF looks in the form first, and parsing an upload's form receives all of it
    (gigabytes) before the token is checked. Upload routes take the token from the
    `X-CSRFToken` header (the upload page's script) or from the body's first part, where
    the page's form puts it (without script), reading at most a few KiB.
    """

    def _get_csrf_token(self) -> str | None:
        if getattr(request, "accepts_uploads", False):
            return request.headers.get("X-CSRFToken") or request.peek_leading_field("csrf_token")
        return super()._get_csrf_token()


csrf = PortalCSRFProtect()
