"""The Flask portal: radiologists, referrers, managers, researchers and admins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask
from flask import render_template

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
    settings = load_settings()
    app.config.update(SECRET_KEY=settings.secret_key, PACS_SETTINGS=settings)
    if config:
        app.config.update(config)

    @app.get("/")
    @app.doc(hide=True)
    def show_home() -> str:
        return render_template("home.html", settings=app.config["PACS_SETTINGS"])

    return app
