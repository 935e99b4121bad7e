"""Services the tests start and the environment they run in: free loopback ports, a PACS_*
environment of its own, the installed `pacs` command, a throwaway Prefect server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.databases import new_database

PACS_COMMAND = Path(sys.executable).with_name("pacs")
PREFECT_QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
}
os.environ.update(PREFECT_QUIET_ENV)


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_env(home: Path, **overrides: str) -> dict[str, str]:
    """A PACS_* environment of its own: temporary home, free ports, short stable age. Unless
    another database is given, the home's database exists, at this release's schema."""
    env = {
        "PACS_HOME": str(home),
        "PACS_ORTHANC_HTTP_PORT": str(find_free_port()),
        "PACS_ORTHANC_DICOM_PORT": str(find_free_port()),
        "PACS_ORTHANC_STABLE_AGE": "2",
        "PACS_PORTAL_PORT": str(find_free_port()),
        "PACS_HL7_PORT": str(find_free_port()),
        "PACS_MWL_PORT": str(find_free_port()),
        "PACS_PREFECT_PORT": str(find_free_port()),
    }
    env.update(overrides)
    database = home / "pacs.sqlite3"
    if "PACS_DATABASE_URL" not in overrides and not database.exists():
        new_database(database)
    return env


def run_pacs(
    env: dict[str, str], *args: str, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run the installed `pacs` console script as a user would, with `env` on top."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    return subprocess.run(
        [str(PACS_COMMAND), *args],
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_prefect_server(home: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway Prefect server (in-memory database, no services); returns it and its API URL."""
    port = find_free_port()
    env = {
        **os.environ,
        **PREFECT_QUIET_ENV,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:///:memory:",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--no-services"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_http(f"{url}/health", timeout=90)
    except requests.ConnectionError:
        server.terminate()
        raise
    return server, url


def wait_for_http(url: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
