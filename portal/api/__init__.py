"""The JSON API under /api/v1 (described at /api/v1/openapi.json)."""

from __future__ import annotations

from apiflask import APIBlueprint

bp = APIBlueprint("api", __name__, url_prefix="/api/v1")

from portal.api import (  # noqa: E402,F401  (register their routes)
    admin,
    analytics,
    auth,
    critical_results,
    exports,
    hooks,
    imports,
    peer_reviews,
    priors,
    reports,
    studies,
    teaching,
)
