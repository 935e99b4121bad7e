"""`pacs up` runs Orthanc, the pipeline and the portal, and stops them on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from config.settings import load_settings
from pacs.orthanc_server import OrthancPaths, is_running
from tests.support.pipeline import find_study
from tests.support.services import PACS_COMMAND, make_env, run_pacs
from tests.support.studies import clone_study, register_test_callers, run_storescu, write_files

pytestmark = pytest.mark.slow  # pacs up, Orthanc and the portal as processes


def wait_for(url: str, timeout: float = 30.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_up_serves_the_portal_ingests_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    settings = load_settings(env)
    register_test_callers(settings)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    process = subprocess.Popen(
        [str(PACS_COMMAND), "up"],
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        spec = wait_for(f"{settings.portal_url}/api/v1/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["openapi"].startswith("3.")
        assert is_running(OrthancPaths(settings.orthanc_dir))

        # A modality sends a study: Orthanc's plugin notifies the portal, the pipeline ingests.
        datasets = clone_study("DX")
        files = write_files(datasets, tmp_path / "dx")
        run_storescu(settings, files)
        deadline = time.monotonic() + 90
        while (study := find_study(settings, datasets[0].StudyInstanceUID)) is None:
            assert time.monotonic() < deadline, "the study never reached the worklist"
            assert process.poll() is None, "pacs up exited"
            time.sleep(0.5)
        assert study.instance_count == len(datasets)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Orthanc stopped" in output
    assert not is_running(OrthancPaths(settings.orthanc_dir))


def prefect_servers_of(home: Path) -> list[int]:
    """Pids of the Prefect servers whose PREFECT_HOME is under `home` (read from /proc)."""
    marker = f"PREFECT_HOME={home}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
            command = (environ.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if any(v.startswith(marker) for v in variables) and b"server\0start" in command:
            pids.append(int(environ.parent.name))
    return pids


def read_server_pid(pid_file: Path, other_than: int | None = None) -> int:
    """The supervised server's pid, written within a second of its first healthy answer."""
    deadline = time.monotonic() + 30
    while True:
        if pid_file.exists() and (pid := int(pid_file.read_text())) != other_than:
            return pid
        assert time.monotonic() < deadline, "no (new) pid recorded for the Prefect server"
        time.sleep(0.2)


def test_up_keeps_ingesting_when_its_prefect_server_is_killed(tmp_path: Path) -> None:
    """One Prefect server for the site, supervised by `pacs up`; other commands use it."""
    env = make_env(tmp_path)
    settings = load_settings(env)
    register_test_callers(settings)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PACS_", "PREFECT_API_URL"))}
    process = subprocess.Popen(
        [str(PACS_COMMAND), "up"],
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pid_file = tmp_path / "prefect" / "server.pid"
    try:
        wait_for(f"{settings.portal_url}/api/v1/openapi.json")
        deadline = time.monotonic() + 120
        while (status := run_pacs(env, "status")).returncode != 0:
            assert time.monotonic() < deadline, status.stdout
            assert process.poll() is None, "pacs up exited"
            time.sleep(1)
        assert "prefect server  up" in status.stdout
        first = read_server_pid(pid_file)
        assert prefect_servers_of(tmp_path) == [first]

        os.kill(first, signal.SIGKILL)
        # Other commands beside it wait for the supervisor's restart, then use that server.
        for command in (("ingest",), ("warehouse", "refresh"), ("ingest", "--status")):
            result = run_pacs(env, *command)
            assert result.returncode == 0, (command, result.stdout, result.stderr)
        second = read_server_pid(pid_file, other_than=first)
        assert prefect_servers_of(tmp_path) == [second]

        datasets = clone_study("DX")
        run_storescu(settings, write_files(datasets, tmp_path / "dx"))
        deadline = time.monotonic() + 90
        while find_study(settings, datasets[0].StudyInstanceUID) is None:
            assert time.monotonic() < deadline, "the study never reached the worklist"
            assert process.poll() is None, "pacs up exited"
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    assert "Prefect server stopped" in output
    assert prefect_servers_of(tmp_path) == []
    status = run_pacs(env, "status")
    assert status.returncode == 1
    # Not the Prefect server: on a shared machine its freed port may serve another one.
    for part in ("archive", "pipeline", "portal"):
        assert f"{part:<15} DOWN" in status.stdout, status.stdout
    assert "database        up" in status.stdout
