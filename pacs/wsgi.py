"""The portal as a WSGI application: gunicorn runs `"pacs.wsgi:make_app()"` (the image, the
compose file) and `pacs up` serves `make_app(settings, pipeline)` with waitress.

Here the portal gets its pipeline dispatcher; the portal itself never imports the pipeline
(nor Prefect) to start.
"""

from __future__ import annotations

from apiflask import APIFlask

from config.settings import Settings, load_settings
from portal import create_app
from storage.pipeline_queue import IngestDispatcher, QueueDispatcher


def make_app(
    settings: Settings | None = None, dispatcher: IngestDispatcher | None = None
) -> APIFlask:
    """The portal; without a dispatcher (gunicorn), work is queued in the database for the
    `pacs worker`s, which run the flows against the site's Prefect server."""
    settings = settings or load_settings()
    return create_app(
        {
            "PACS_SETTINGS": settings,
            "PACS_PIPELINE": dispatcher or QueueDispatcher(settings.database_url),
        }
    )
