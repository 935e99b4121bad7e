"""The portal as a WSGI application: gunicorn runs `"pacs.wsgi:make_app()"` (the image, the
compose file) and `pacs up` serves `make_app(settings, pipeline)` with waitress.

Here the portal gets its pipeline dispatcher; the portal itself never imports the pipeline
(nor Prefect) to start.
"""

from __future__ import annotations

from apiflask import APIFlask

from config.settings import Settings, load_settings
from pacs.garbage_collection import tune_garbage_collection
from portal import create_app
from storage.pipeline_queue import IngestDispatcher, QueueDispatcher


def make_app(
    settings: Settings | None = None, dispatcher: IngestDispatcher | None = None
) -> APIFlask:
    """The portal; without a dispatcher (gunicorn), work is queued in the database for the
    `pacs worker`s, which run the flows against the site's Prefect server.

    It is the last step of a portal process's start-up (each gunicorn worker, `pacs up`):
    the garbage collector is set for serving here."""
    settings = settings or load_settings()
    app = create_app(
        {
            "PACS_SETTINGS": settings,
            "PACS_PIPELINE": dispatcher or QueueDispatcher(settings.database_url),
        }
    )
    tune_garbage_collection()
    return app
