"""`pacs portal`: the portal alone, under gunicorn with several processes (scaled out).

The processes share the operational database; none runs a pipeline: stable studies and
approved exports are queued in the database for the `pacs worker`s. Threads per process
serve the viewer, which fetches a series' frames a few dozen at a time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from config.settings import Settings
from storage.database import create_database_engine
from storage.schema import check_schema

GUNICORN = Path(sys.executable).with_name("gunicorn")
KEEP_ALIVE_SECONDS = 75  # above the 60 s idle timeout of common proxies and load balancers


def run_portal(settings: Settings, workers: int | None) -> int:
    """Replace this process by gunicorn (its signals and restarts are gunicorn's own).

    A database behind this release is refused here, once, with the command that fixes it
    (SchemaError), rather than by N processes failing to boot.
    """
    check_schema(create_database_engine(settings.database_url))
    command = [
        str(GUNICORN),
        "--bind",
        f"{settings.portal_host}:{settings.portal_port}",
        "--workers",
        str(workers or settings.portal_workers),
        "--threads",
        "8",
        "--graceful-timeout",
        "20",
        # Idle keep-alive connections are held for 75 s (gunicorn's default is 2 s). A client
        # that sends on a connection the server is closing gets a reset: with users who
        # click every second or two that happened to about one request in a hundred.
        "--keep-alive",
        str(KEEP_ALIVE_SECONDS),
        "--no-control-socket",  # one per user by default: two portals on a machine would clash
        "pacs.wsgi:make_app()",
    ]
    os.execv(command[0], command)
    return 1  # not reached
