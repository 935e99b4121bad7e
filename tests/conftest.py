"""Shared fixtures: a real Orthanc on free loopback ports with a temporary PACS_HOME."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from pacs.orthanc_server import start_orthanc, stop_orthanc
from pacs.settings import Settings, load_settings
from storage.archive import ArchiveClient

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
    """A PACS_* environment of its own: temporary home, free ports, short stable age."""
    env = {
        "PACS_HOME": str(home),
        "PACS_ORTHANC_HTTP_PORT": str(find_free_port()),
        "PACS_ORTHANC_DICOM_PORT": str(find_free_port()),
        "PACS_ORTHANC_STABLE_AGE": "2",
        "PACS_PORTAL_PORT": str(find_free_port()),
    }
    env.update(overrides)
    return env


def run_pacs(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run the installed `pacs` console script as a user would, with `env` on top."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    return subprocess.run(
        [str(PACS_COMMAND), *args],
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def orthanc_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of the session's Orthanc, started from the project's own template."""
    env = make_env(tmp_path_factory.mktemp("pacs-home"))
    settings = load_settings(env)
    process = start_orthanc(settings)
    yield env
    stop_orthanc(settings)
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect server for the session (in-memory database); flows here report to it."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    server, url = start_prefect_server(tmp_path_factory.mktemp("prefect-home"))
    try:
        os.environ["PREFECT_API_URL"] = url  # for the `pacs` subprocesses
        with temporary_settings(
            updates={PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        ):
            yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.terminate()
        server.wait(timeout=30)


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


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One Chromium for every browser test module: Playwright's sync API allows one driver."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # skips without Chromium

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def settings(orthanc_env: dict[str, str]) -> Settings:
    return load_settings(orthanc_env)


@pytest.fixture
def archive(settings: Settings) -> Iterator[ArchiveClient]:
    with ArchiveClient.from_settings(settings) as client:
        yield client
