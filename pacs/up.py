"""`pacs up`: the whole platform on one machine, in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

import waitress

from config.settings import Settings
from pacs import orthanc_server
from pacs.console import configure_logging
from pacs.db_commands import run_upgrade
from pacs.demo import run_demo
from pacs.engine import QUIET_ENV, SupervisedServer, drain_prefect_logs
from pacs.modality_commands import apply_to_archive
from pacs.order_services import OrderServices
from pacs.pipeline import EmbeddedPipeline
from pacs.wsgi import make_app


def run_platform(settings: Settings, *, load_demo_data: bool, verbose: bool = False) -> int:
    """Upgrade the database's schema, start Orthanc (unless already running), the site's
    Prefect server (unless one is configured), the pipeline and the portal; stop them on exit.

    The portal answers at once; the pipeline waits for the Prefect server (3-8 s to start),
    so studies notified meanwhile wait in its queue. The terminal gets one line per event
    (pacs/console.py), the detail goes to PACS_HOME/logs/pacs.log."""
    os.environ.update(QUIET_ENV)  # no telemetry from this process's Prefect client either
    log_file = configure_logging(settings, verbose=verbose)
    run_upgrade(settings, sys.stdout)
    paths = orthanc_server.OrthancPaths(settings.orthanc_dir)
    process = None
    if not orthanc_server.is_running(paths):
        process = orthanc_server.start_orthanc(settings)
        print(f"pacs: Orthanc started (pid {process.pid})", flush=True)
    else:
        print(f"pacs: using the Orthanc already running on {paths.folder}", flush=True)
        print(f"pacs: {apply_to_archive(settings)}", flush=True)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    engine = None if settings.prefect_api_url else SupervisedServer(settings)
    order_services = OrderServices(settings)
    pipeline = EmbeddedPipeline(
        refresh_every=settings.warehouse_refresh_every,
        engine_url=settings.engine_url,
        database_url=settings.database_url,
    )
    try:
        if engine is not None:
            engine.start()
        pipeline.start()
        order_services.start()
        if load_demo_data:
            run_demo(settings, out=sys.stdout, pipeline=pipeline)
        app = make_app(settings, pipeline)
        server = make_portal_server(app, settings)
        print(f"pacs: portal on {settings.portal_url} (Ctrl-C stops everything)", flush=True)
        print(f"pacs: detailed log in {log_file}", flush=True)
        try:
            server.run()
        finally:
            server.close()
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM before the portal serves (waitress ends on it by itself)
    finally:
        print("pacs: stopping", flush=True)
        order_services.stop()
        pipeline.stop()
        if engine is not None:
            drain_prefect_logs()
            engine.stop()
            print("pacs: Prefect server stopped", flush=True)
        if process is not None:
            orthanc_server.stop_orthanc(settings)
            process.wait()
            print("pacs: Orthanc stopped", flush=True)
    return 0


def make_portal_server(app: Any, settings: Settings) -> Any:
    """The portal's HTTP server (waitress), as `pacs up` runs it."""
    return waitress.create_server(
        app,
        host=settings.portal_host,
        port=settings.portal_port,
        # Many threads: the viewer fetches a series' frames a few dozen at a time.
        threads=24,
        ident="pacs",
        # Uploads up to PACS_IMPORT_MAX_MB (and their multipart framing) reach the portal,
        # which refuses larger ones itself; waitress spools bodies to disk, not memory.
        max_request_body_size=(settings.import_max_mb + 64) * 1024**2,
    )


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
