"""The portal as a WSGI application: gunicorn runs `"pacs.wsgi:make_app()"` (the image, the
compose file) and `pacs up` serves `make_app(settings, pipeline)` with waitress.

Here the portal gets its pipeline dispatcher; the portal itself never imports the pipeline
(nor Prefect) to start.
"""

from __future__ import annotations

from apiflask import APIFlask

from config.settings import Settings, load_settings
from pacs.pipeline import IngestDispatcher, make_dispatcher
from portal import create_app


def make_app(
    settings: Settings | None = None, dispatcher: IngestDispatcher | None = None
) -> APIFlask:
    """The portal; without a dispatcher, the Prefect deployments' one when `PREFECT_API_URL`
    is set (else notifications wait for the next reconciliation)."""
    return create_app(
        {
            "PACS_SETTINGS": settings or load_settings(),
            "PACS_PIPELINE": dispatcher or make_dispatcher(),
        }
    )
