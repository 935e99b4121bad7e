"""`pacs orthanc start|stop|status` as a user runs it, and its one-line errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from config.settings import load_settings
from pacs.orthanc_server import render_config
from storage.archive import ArchiveClient
from tests.support.services import make_env, run_pacs
from tests.support.studies import make_part10


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_rendered_config_is_json_with_settings_and_no_remote_access(tmp_path: Path) -> None:
    settings = load_settings(make_env(tmp_path, PACS_ORTHANC_AET="MYPACS"))
    config = json.loads(render_config(settings))
    assert config["HttpPort"] == settings.orthanc_http_port
    assert config["DicomPort"] == settings.orthanc_dicom_port
    assert config["DicomAet"] == "MYPACS"
    assert config["StableAge"] == 2
    assert config["RemoteAccessAllowed"] is False
    assert config["AuthenticationEnabled"] is True
    assert config["RegisteredUsers"] == {
        settings.orthanc_user: settings.orthanc_password,
        settings.orthanc_viewer_user: settings.orthanc_viewer_password,
    }
    assert config["PacsPlatform"]["ViewerUser"] == settings.orthanc_viewer_user
    assert config["DicomWeb"]["Root"] == "/dicom-web/"
    assert config["StorageDirectory"].startswith(str(tmp_path))
    assert config["PacsPlatform"]["WebhookUrl"] == settings.webhook_url


def test_status_prints_version_ports_and_counts(orthanc_env: dict[str, str]) -> None:
    result = run_pacs(orthanc_env, "orthanc", "status")
    assert result.returncode == 0, result.stderr
    assert "Orthanc 1." in result.stdout
    assert f"DICOM ORTHANC@{orthanc_env['PACS_ORTHANC_DICOM_PORT']}" in result.stdout
    assert "instances" in result.stdout and "studies" in result.stdout


def test_second_instance_on_the_same_storage_is_refused(orthanc_env: dict[str, str]) -> None:
    other_ports = make_env(Path(orthanc_env["PACS_HOME"]))
    env = {**other_ports, "PACS_HOME": orthanc_env["PACS_HOME"]}
    assert_one_line_error(run_pacs(env, "orthanc", "start"), "already running", "pacs orthanc stop")


def test_wrong_credentials_are_named(orthanc_env: dict[str, str]) -> None:
    env = {**orthanc_env, "PACS_ORTHANC_PASSWORD": "wrong"}
    assert_one_line_error(
        run_pacs(env, "orthanc", "status"), "refused the credentials", "PACS_ORTHANC_PASSWORD"
    )


def test_missing_binary_says_what_to_install(tmp_path: Path) -> None:
    env = make_env(tmp_path, PACS_ORTHANC_BINARY=str(tmp_path / "no-such-Orthanc"))
    assert_one_line_error(
        run_pacs(env, "orthanc", "start"), "not installed", "apt-get install -y orthanc"
    )


def test_port_in_use_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        env = make_env(tmp_path, PACS_ORTHANC_HTTP_PORT=str(squatter.getsockname()[1]))
        assert_one_line_error(
            run_pacs(env, "orthanc", "start"), "already in use", "PACS_ORTHANC_HTTP_PORT"
        )


def test_status_of_a_stopped_archive_says_how_to_start(tmp_path: Path) -> None:
    assert_one_line_error(run_pacs(make_env(tmp_path), "orthanc", "status"), "pacs orthanc start")


@pytest.mark.slow
def test_stale_pid_file_is_replaced_and_storage_survives_restart(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    pid_file = tmp_path / "orthanc" / "orthanc.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text("999999\n")  # left behind by a crash

    started = run_pacs(env, "orthanc", "start")
    assert started.returncode == 0, started.stderr
    try:
        assert pid_file.read_text().strip() != "999999"
        with ArchiveClient.from_settings(load_settings(env)) as client:
            client.upload_instance(make_part10())
        stopped = run_pacs(env, "orthanc", "stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert not pid_file.exists()

        restarted = run_pacs(env, "orthanc", "start")
        assert restarted.returncode == 0, restarted.stderr
        status = run_pacs(env, "orthanc", "status")
        assert "instances 1," in status.stdout
    finally:
        run_pacs(env, "orthanc", "stop")
    assert "not running" in run_pacs(env, "orthanc", "stop").stdout
