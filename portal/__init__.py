"""The Flask portal: radiologists, referrers, managers, researchers and admins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask, HTTPError
from flask import render_template

from pacs.pipeline import make_dispatcher
from pacs.settings import load_settings


def create_app(config: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the portal; `config` overrides settings (tests pass their own)."""
    app = APIFlask(
        __name__,
        title="PACS platform API",
        version="1",
        spec_path="/api/v1/openapi.json",
        docs_path=None,
    )
    config = dict(config or {})
    settings = config.get("PACS_SETTINGS") or load_settings()
    app.config.update(SECRET_KEY=settings.secret_key, PACS_SETTINGS=settings)
    app.config.update(config)
    app.extensions["pacs_dispatcher"] = app.config.get("PACS_PIPELINE") or make_dispatcher()

    @app.error_processor
    def format_error(error: HTTPError) -> tuple[dict[str, Any], int, Any]:
        """The contract's error shape: {"error": message, "detail": ...}."""
        return {"error": error.message, "detail": error.detail}, error.status_code, error.headers

    from portal.api import bp as api_bp

    app.register_blueprint(api_bp)

    @app.get("/")
    @app.doc(hide=True)
    def show_home() -> str:
        return render_template("home.html", settings=app.config["PACS_SETTINGS"])

    return app
