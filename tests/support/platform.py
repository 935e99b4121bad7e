"""The scaled-out platform's processes from the project's own commands, for tests and
benchmarks: Orthanc on PostgreSQL, `pacs engine up`, `pacs portal`, `pacs worker`s."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from config.settings import Settings, load_settings
from tests.support import postgres
from tests.support.services import PACS_COMMAND, find_free_port, make_env, run_pacs
from tests.support.studies import register_test_callers


class Platform:
    """The scaled-out processes of one test, each stopped at the end."""

    def __init__(self, home: Path, database: postgres.PostgresServer) -> None:
        prefect_port = find_free_port()
        self.env = make_env(
            home,
            PACS_DATABASE_URL=database.url("pacs"),
            PACS_ORTHANC_DATABASE_URL=database.url("orthanc", "postgresql"),
            PACS_PREFECT_DATABASE_URL=database.url("prefect", "postgresql+asyncpg"),
            PACS_PREFECT_PORT=str(prefect_port),
            PREFECT_API_URL=f"http://127.0.0.1:{prefect_port}/api",
            PACS_PORTAL_WORKERS="2",
        )
        self.settings: Settings = load_settings(self.env)
        self.home = home
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PACS_", "PREFECT_"))}
        log = (self.home / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [str(PACS_COMMAND), *args],
            env={**clean, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes[name] = process
        return process

    def start_orthanc(self) -> subprocess.CompletedProcess:
        register_test_callers(self.settings)  # the DICOM port takes registered callers only
        return run_pacs(self.env, "orthanc", "start")

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def wait_for_line(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(name):
            assert self.processes[name].poll() is None, self.log(name)[-3000:]
            assert time.monotonic() < deadline, self.log(name)[-3000:]
            time.sleep(0.5)

    @property
    def portal_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.portal_port}"

    def wait_for_portal(self, timeout: float) -> None:
        """Until `pacs portal` answers its readiness probe (it must not have died)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(f"{self.portal_url}/api/v1/openapi.json", timeout=5).raise_for_status()
                return
            except requests.RequestException:
                assert self.processes["portal"].poll() is None, self.log("portal")[-3000:]
                assert time.monotonic() < deadline, self.log("portal")[-3000:]
                time.sleep(0.5)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        run_pacs(self.env, "orthanc", "stop")

    def flow_runs(self, state_type: str | None = None, flow_name: str | None = None) -> list[dict]:
        """Runs in one state or of one flow (or both), filtered by the server: unfiltered,
        the first page can be taken up by runs a test did not make."""
        body: dict = {"limit": 200}
        if state_type:
            body["flow_runs"] = {"state": {"type": {"any_": [state_type]}}}
        if flow_name:
            body["flows"] = {"name": {"any_": [flow_name]}}
        answer = requests.post(
            f"{self.settings.engine_url}/flow_runs/filter", json=body, timeout=10
        )
        answer.raise_for_status()
        return answer.json()
