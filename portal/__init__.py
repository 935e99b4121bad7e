"""The Flask portal: radiologists, referrers, managers, researchers and admins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask, HTTPError
from flask import Response, request
from flask_sqlalchemy.session import Session as PortalSession
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from config.settings import load_settings
from core.assignments import MAX_PRIORITY_REASON
from core.exports import MAX_PURPOSE_LENGTH, MAX_REASON_LENGTH
from core.records import describe_study_line, format_person_name
from core.reports import MAX_ADDENDUM_LENGTH, MAX_SECTION_LENGTH
from portal.extensions import csrf, db, login_manager
from portal.import_service import UploadRequest
from portal.live_analytics import watch_analytics_changes
from portal.report_delivery import ReportDelivery
from portal.security import deny, enforce_access
from storage.database import configure_sqlite, engine_options
from storage.schema import check_schema

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# The limits the pages' inputs show (maxlength), from the rules that check them.
FIELD_LIMITS = {
    "MAX_PRIORITY_REASON": MAX_PRIORITY_REASON,
    "MAX_PURPOSE_LENGTH": MAX_PURPOSE_LENGTH,
    "MAX_REASON_LENGTH": MAX_REASON_LENGTH,
    "MAX_ADDENDUM_LENGTH": MAX_ADDENDUM_LENGTH,
    "MAX_SECTION_LENGTH": MAX_SECTION_LENGTH,
}


def create_app(config: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the portal; `config` overrides settings (tests pass their own) and names the
    pipeline dispatcher (`PACS_PIPELINE`; `pacs.wsgi.make_app` gives the deployment one)."""
    app = APIFlask(
        __name__,
        title="PACS platform API",
        version="1",
        spec_path="/api/v1/openapi.json",
        docs_path=None,
    )
    config = dict(config or {})
    settings = config.get("PACS_SETTINGS") or load_settings()
    app.config.update(
        PACS_SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.portal_https,
        REMEMBER_COOKIE_SECURE=settings.portal_https,
        WTF_CSRF_CHECK_DEFAULT=False,  # enforce_access checks cookie-authenticated writes
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.config.update(config)
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    )
    app.request_class = UploadRequest  # upload routes: their own limit, files streamed to disk
    if settings.portal_proxies:
        # Behind N reverse proxies (TLS ends there): trust their X-Forwarded-* headers.
        n = settings.portal_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)
    # Where stable-study notifications and approved exports go (`pacs.wsgi`, `pacs up`);
    # without one they wait for the next reconciliation.
    app.extensions["pacs_dispatcher"] = app.config.get("PACS_PIPELINE")
    app.extensions["pacs_report_delivery"] = ReportDelivery(app)

    db.init_app(app)
    watch_analytics_changes(PortalSession)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    # Sessions live in the database and end on sign-out; Flask-Login's address/agent hash
    # would only add 128 bytes to every request's cookie (the viewer sends hundreds).
    login_manager.session_protection = None
    csrf.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", configure_sqlite)
        # Migrations make the schema (`pacs db upgrade`, `pacs up`): refuse one that is behind.
        check_schema(db.engine)

    app.jinja_env.filters["person_name"] = format_person_name
    app.jinja_env.globals["study_line"] = describe_study_line
    app.jinja_env.globals.update(FIELD_LIMITS)
    app.before_request(enforce_access)
    app.after_request(add_security_headers)

    @app.errorhandler(CSRFError)
    def refuse_without_csrf(error: CSRFError) -> Any:
        return deny(400, f"the form is missing its CSRF token ({error.description})")

    @app.error_processor
    def format_error(error: HTTPError) -> tuple[dict[str, Any], int, Any]:
        """The contract's error shape: {"error": message, "detail": ...}."""
        return {"error": error.message, "detail": error.detail}, error.status_code, error.headers

    from portal.admin import bp as admin_bp
    from portal.analytics import bp as analytics_bp
    from portal.api import bp as api_bp
    from portal.auth import bp as auth_bp
    from portal.critical_results import bp as critical_results_bp
    from portal.imports import bp as imports_bp
    from portal.orders import bp as orders_bp
    from portal.peer_review import bp as peer_review_bp
    from portal.reports import bp as reports_bp
    from portal.research import bp as research_bp
    from portal.teaching import bp as teaching_bp
    from portal.viewer import bp as viewer_bp
    from portal.viewer import init_viewer
    from portal.worklist import bp as worklist_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(worklist_bp)
    app.register_blueprint(viewer_bp)
    init_viewer(app)
    app.register_blueprint(admin_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(research_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(imports_bp)
    app.register_blueprint(analytics_bp)
    app.register_blueprint(orders_bp)
    app.register_blueprint(critical_results_bp)
    app.register_blueprint(peer_review_bp)
    app.register_blueprint(teaching_bp)
    return app


def add_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response
