"""`pacs worker`: one worker of the scaled-out platform (run as many as you like).

Each runs, against the site's Prefect server (`PREFECT_API_URL`):
- the queue consumer (`pacs/consumer.py`): studies and exports the portal queued, and the
  scheduled flows (reconcile, the outboxes, the warehouse), each once per interval whatever
  the number of workers (one worker takes each turn, and none while its last run goes on);
- a Prefect process worker on the `pacs` work pool, as a child that dies with it: the
  deployment runs asked for on demand (the Prefect UI, `prefect deployment run`);
- the reaper: flow runs left Running by a consumer that died (no heartbeat for a minute)
  or by a flow-run process of this machine that is gone are marked Crashed, which also
  frees their deployment's concurrency slot; their queue rows are retried anyway.
"""

from __future__ import annotations

import ctypes
import datetime
import logging
import os
import signal
import socket
import subprocess
import time
from types import FrameType

from sqlalchemy import select

from config.settings import Settings
from pacs.consumer import QueueConsumer, consumer_tag
from pacs.engine import PREFECT_COMMAND, QUIET_ENV, START_TIMEOUT, EngineError, wait_until_healthy
from pacs.garbage_collection import tune_garbage_collection
from storage.database import create_database_engine, open_session
from storage.pipeline_queue import DEAD_AFTER, PipelineWorker, forget_worker
from storage.schema import check_schema

log = logging.getLogger(__name__)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK_POOL = "pacs"
REAP_EVERY = 30.0
RESTART_EVERY = 10.0  # seconds between starts of the Prefect worker child


def run_worker(settings: Settings, *, healthcheck: bool = False) -> int:
    """Until SIGTERM or Ctrl-C: the consumer, a supervised Prefect worker and the reaper."""
    if not settings.prefect_api_url:
        raise EngineError(
            "pacs worker needs PREFECT_API_URL: the site's Prefect server (`pacs engine up`)"
        )
    check_schema(create_database_engine(settings.database_url))  # before any thread uses it
    if not wait_until_healthy(settings.engine_url, START_TIMEOUT):
        raise EngineError(f"no Prefect server answers at {settings.engine_url}")
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    logging.getLogger("pacs").setLevel(logging.INFO)  # each study's queued -> done time
    import prefect  # noqa: F401  (once, here: importing it from two threads at once deadlocks)

    consumer = QueueConsumer(settings)
    prefect_worker: subprocess.Popen | None = None
    print(f"pacs: worker {consumer.name} on {settings.engine_url}", flush=True)
    try:
        consumer.start()
        tune_garbage_collection()
        next_reap = next_start = 0.0
        while True:
            if (prefect_worker is None or prefect_worker.poll() is not None) and (
                time.monotonic() >= next_start
            ):
                prefect_worker = start_prefect_worker(settings, consumer.name, healthcheck)
                next_start = time.monotonic() + RESTART_EVERY
            if time.monotonic() >= next_reap:
                reap_dead_runs(settings)
                next_reap = time.monotonic() + REAP_EVERY
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("pacs: worker stopping", flush=True)
    finally:
        consumer.stop()
        if prefect_worker is not None:
            stop_child(prefect_worker)
    return 0


def start_prefect_worker(settings: Settings, name: str, healthcheck: bool) -> subprocess.Popen:
    """`prefect worker start` on the pool, killed by the kernel if this process dies;
    `healthcheck` serves its health on PREFECT_WORKER_WEBSERVER_PORT (8080)."""
    return subprocess.Popen(
        [
            str(PREFECT_COMMAND),
            "worker",
            "start",
            "--pool",
            WORK_POOL,
            "--type",
            "process",
            "--name",
            f"{name}-prefect",
            *(["--with-healthcheck"] if healthcheck else []),
        ],
        env={
            **os.environ,
            **QUIET_ENV,
            "PREFECT_API_URL": settings.engine_url,
            "PACS_APP_DIR": REPO_ROOT,
            "PREFECT_WORKER_QUERY_SECONDS": "5",
        },
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG: SIGKILL this child when its parent dies, even by SIGKILL."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def stop_child(process: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL: a Prefect worker may ignore SIGTERM for 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def reap_dead_runs(settings: Settings) -> int:
    """Mark Crashed the runs still Running of dead consumers and of gone local processes."""
    try:
        return crash_orphaned_runs(settings)
    except Exception:
        log.exception("worker: cannot look for orphaned flow runs")
        return 0


def crash_orphaned_runs(settings: Settings) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Crashed

    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        dead = list(
            session.scalars(
                select(PipelineWorker.name).where(PipelineWorker.seen_at < now - DEAD_AFTER)
            )
        )
    active = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    crashed = 0
    with (
        temporary_settings(updates={PREFECT_API_URL: settings.engine_url}),
        get_client(sync_client=True) as client,
    ):
        for name in dead:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=active, tags=FlowRunFilterTags(all_=[consumer_tag(name)])
                )
            )
            for run in runs:
                client.set_flow_run_state(
                    run.id, Crashed(message=f"its consumer {name} stopped beating")
                )
                crashed += 1
            with open_session(settings.database_url) as session:
                forget_worker(session, name)
        host = socket.gethostname()
        for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(state=active)):
            if run.deployment_id is None or not run.infrastructure_pid:
                continue
            if run_host(run) == host and not pid_alive(run.infrastructure_pid):
                client.set_flow_run_state(
                    run.id, Crashed(message="its process on this machine is gone")
                )
                crashed += 1
    if crashed:
        log.warning("worker: %d orphaned flow runs marked Crashed", crashed)
    return crashed


def run_host(run: object) -> str | None:
    """The machine a deployment run was started on, from its worker's name
    (`worker@host:pid-prefect`)."""
    labels = getattr(run, "labels", None) or {}
    worker = str(labels.get("prefect.worker.name", ""))
    if "@" not in worker:
        return None
    return worker.split("@", 1)[1].split(":", 1)[0]


def pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
