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
from tests.support.services import PACS_COMMAND, make_env
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
