"""`pacs engine up`: the Prefect server of a scaled-out site, ready for `pacs worker`s.

In the foreground until SIGTERM or Ctrl-C: the server with its services (the scheduler
of the deployments, late runs, automations), on `PACS_PREFECT_DATABASE_URL` (PostgreSQL
when scaled out) or a SQLite file under `PACS_HOME/prefect`, restarted if it dies; the
`pacs` process work pool and the deployments of `prefect.yaml` registered once it answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from config.settings import Settings
from pacs.engine import (
    PREFECT_COMMAND,
    QUIET_ENV,
    START_TIMEOUT,
    EngineError,
    SupervisedServer,
    wait_until_healthy,
)
from pacs.worker import REPO_ROOT, WORK_POOL, raise_keyboard_interrupt


def run_engine_up(settings: Settings) -> int:
    server = SupervisedServer(
        settings,
        services=True,
        database_url=settings.prefect_database_url or None,
        host=settings.prefect_host,
    )
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        server.start()
        if not wait_until_healthy(server.url, START_TIMEOUT):
            raise EngineError(f"the Prefect server did not answer on {server.url} (see its log)")
        register_deployments(server.url)
        print(
            f"pacs: Prefect server ready: PREFECT_API_URL={server.url} for the workers, "
            f"UI on {server.url.removesuffix('/api')} (Ctrl-C stops it)",
            flush=True,
        )
        while True:
            time.sleep(1.0)  # the supervisor's thread restarts the server if it dies
    except KeyboardInterrupt:
        print("pacs: stopping the Prefect server", flush=True)
    finally:
        server.stop()
    return 0


def register_deployments(url: str) -> None:
    """The `pacs` process work pool (once) and every deployment of prefect.yaml (upserted;
    `schedules: []` there clears the schedules an earlier release registered)."""
    env = {
        **os.environ,
        **QUIET_ENV,
        "PREFECT_API_URL": url,
        "PACS_APP_DIR": REPO_ROOT,
        "PREFECT_DEPLOYMENTS_CLEAR_SCHEDULES_ON_EMPTY": "true",
    }
    pool = subprocess.run(
        [str(PREFECT_COMMAND), "work-pool", "create", WORK_POOL, "--type", "process"],
        env=env,
        capture_output=True,
        text=True,
    )
    if pool.returncode != 0 and "already exists" not in pool.stdout + pool.stderr:
        raise EngineError(f"cannot create the work pool {WORK_POOL}: {pool.stderr.strip()}")
    deploy = subprocess.run(
        [str(PREFECT_COMMAND), "--no-prompt", "deploy", "--all"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if deploy.returncode != 0:
        lines = (deploy.stderr or deploy.stdout).strip().splitlines()
        raise EngineError(f"prefect deploy failed: {lines[-1] if lines else deploy.returncode}")
