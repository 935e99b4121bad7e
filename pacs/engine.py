"""The site's one Prefect server ("the engine"): found, started and supervised.

A site has one Prefect server. When the platform is scaled out it is given by
`PREFECT_API_URL` (`pacs engine up` runs it). On one machine `pacs up` runs it as a
supervised child on loopback (`PACS_PREFECT_PORT`), its database and `PREFECT_HOME`
under `PACS_HOME/prefect`, and restarts it when it dies; every other `pacs` command
uses that one, or, when nothing answers there, starts it for its own duration.
Never Prefect's throwaway servers: several of them shared `~/.prefect` and one
failing to bind left every later flow run of `pacs up` refused.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import requests

from config.settings import Settings

log = logging.getLogger(__name__)

PREFECT_COMMAND = Path(sys.executable).with_name("prefect")
QUIET_ENV = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
START_TIMEOUT = 120.0  # first start migrates a new database: ~8 s alone, far more under load


class EngineError(RuntimeError):
    """The Prefect server cannot be started or reached; the message says what to do."""


@dataclass(frozen=True)
class EnginePaths:
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / "prefect.db"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def pid(self) -> Path:
        return self.folder / "server.pid"

    @property
    def lock(self) -> Path:
        """Held by the `pacs up` that supervises this site's server, for as long as it runs."""
        return self.folder / "supervisor.lock"


def is_supervised(settings: Settings) -> bool:
    """Whether a `pacs up` supervises this PACS_HOME's server (it restarts it when it dies)."""
    paths = EnginePaths(settings.prefect_dir)
    if not paths.lock.exists():
        return False
    with paths.lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers its health check at `url`."""
    try:
        return requests.get(f"{url}/health", timeout=timeout).ok
    except requests.RequestException:
        return False


def wait_until_healthy(url: str, timeout: float) -> bool:
    """Poll the health check for up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(url):
            return True
        time.sleep(0.25)
    return False


def server_environment(
    settings: Settings, *, database_url: str | None = None, host: str = "127.0.0.1"
) -> dict[str, str]:
    """Prefect's settings for a server of this site: loopback API and UI, its own home."""
    paths = EnginePaths(settings.prefect_dir)
    return {
        **os.environ,
        **QUIET_ENV,
        "PREFECT_HOME": str(paths.folder),
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{settings.prefect_port}/api",
        "PREFECT_API_DATABASE_CONNECTION_URL": database_url
        or f"sqlite+aiosqlite:///{paths.database}",
        "PREFECT_API_URL": f"http://127.0.0.1:{settings.prefect_port}/api",
    }


def start_server(
    settings: Settings,
    *,
    services: bool = False,
    database_url: str | None = None,
    host: str = "127.0.0.1",
) -> subprocess.Popen:
    """Start `prefect server start` in the background, logging to `PACS_HOME/prefect`.

    Without services (the single machine) it is the API and UI alone: no deployments
    to schedule there, and it starts faster and lighter. It does not wait for health.
    """
    paths = EnginePaths(settings.prefect_dir)
    paths.folder.mkdir(parents=True, exist_ok=True)
    command = [str(PREFECT_COMMAND), "server", "start"]
    if not services:
        command.append("--no-services")
    with paths.log.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            env=server_environment(settings, database_url=database_url, host=host),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop it in order
        )
    return process


def record_pid(process: subprocess.Popen, settings: Settings) -> None:
    """The pid of the server that answers (one that lost the port race never does)."""
    EnginePaths(settings.prefect_dir).pid.write_text(f"{process.pid}\n")


def stop_server(process: subprocess.Popen, settings: Settings) -> None:
    """SIGTERM, then SIGKILL after 15 s; forget the pid file if it is this process's."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    paths = EnginePaths(settings.prefect_dir)
    try:
        if paths.pid.read_text().strip() == str(process.pid):
            paths.pid.unlink()
    except FileNotFoundError:
        pass


class SupervisedServer:
    """Keeps a Prefect server answering at the site's loopback port while `pacs up` runs.

    A thread checks every second: when nothing answers and our child has exited, a new
    one is started. A healthy server started by someone else (a `pacs` command run
    before `pacs up`) is used, not duplicated.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        services: bool = False,
        database_url: str | None = None,
        host: str = "127.0.0.1",
        check_every: float = 1.0,
    ) -> None:
        self.settings = settings
        self.options: dict[str, Any] = {
            "services": services,
            "database_url": database_url,
            "host": host,
        }
        self.url = f"http://127.0.0.1:{settings.prefect_port}/api"
        self.check_every = check_every
        self.process: subprocess.Popen | None = None
        self.recorded = False  # its pid written, once it answered
        self.lock: TextIO | None = None
        self.restarts = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.supervise, name="pacs-engine", daemon=True)

    def start(self) -> None:
        paths = EnginePaths(self.settings.prefect_dir)
        paths.folder.mkdir(parents=True, exist_ok=True)
        self.lock = paths.lock.open("a")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock.close()
            self.lock = None
            raise EngineError(
                f"another `pacs up` already runs the Prefect server of {self.settings.home}"
            ) from None
        self.ensure_running()
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(30)
        if self.process is not None:
            stop_server(self.process, self.settings)
        if self.lock is not None:
            self.lock.close()  # releases the flock

    def supervise(self) -> None:
        while not self.stopping.wait(self.check_every):
            try:
                self.ensure_running()
            except OSError:
                log.exception("engine: cannot start the Prefect server")

    def ensure_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            if not self.recorded and is_healthy(self.url, timeout=1.0):
                record_pid(self.process, self.settings)
                self.recorded = True
            return
        if self.process is not None:
            log.warning(
                "engine: the Prefect server exited (%s); restarting", self.process.returncode
            )
            self.process = None
            self.restarts += 1
        if is_healthy(self.url, timeout=1.0):
            return
        self.process = start_server(self.settings, **self.options)
        self.recorded = False
        ui = f"http://127.0.0.1:{self.settings.prefect_port}"
        print(f"pacs: Prefect UI on {ui} (server pid {self.process.pid})", flush=True)


@contextmanager
def use_engine(settings: Settings) -> Iterator[str]:
    """Run the flows of this block against the site's Prefect server; yields its API URL.

    The configured or running server is used; while `pacs up` restarts its server, the
    block waits for it; with none at all, the site's server is started for the duration
    of the block (same database, same port) and stopped after. A flow that fails because
    the server stopped answering ends in EngineError (one line for the user).
    """
    url = settings.engine_url
    process = None
    if not settings.prefect_api_url and not is_healthy(url):
        if not is_supervised(settings):
            process = start_server(settings)
        if not wait_until_healthy(url, START_TIMEOUT):
            if process is not None:
                stop_server(process, settings)
            raise EngineError(
                f"the Prefect server did not start on {url}: see "
                f"{EnginePaths(settings.prefect_dir).log} (PACS_PREFECT_PORT moves it)"
            )
    try:
        with engine_settings(url):
            yield url
    except Exception as error:
        if not is_engine_down(url, error):
            raise
        raise EngineError(
            f"the Prefect server at {url} stopped answering; run the command again"
        ) from None
    finally:
        if process is not None:
            drain_prefect_logs()
            stop_server(process, settings)


def drain_prefect_logs(timeout: float = 10.0) -> None:
    """Send the run logs Prefect still holds to its server while it is up: at exit, with
    the server gone, Prefect would retry for a minute and print "Error logging to API"."""
    if "prefect" not in sys.modules:
        return
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout)


@contextmanager
def engine_settings(url: str | None) -> Iterator[None]:
    """Flows in this block (this thread) report to `url` (None: where Prefect's own settings
    say), without flow heartbeats: they cost each synchronous in-process run ~1 s, and
    these runs are watched anyway.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    if url is not None:
        updates[PREFECT_API_URL] = url
    with temporary_settings(updates=updates):
        yield


def is_engine_down(url: str, error: BaseException) -> bool:
    """Whether a failed flow call failed because the Prefect server did not answer."""
    import httpx

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, httpx.TransportError):
            return True
        cause = cause.__cause__ or cause.__context__
    return not is_healthy(url, timeout=1.0)
