"""Settings from PACS_* variables: defaults, overrides, bad values, generated secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings


def test_defaults_give_a_single_machine_under_pacs_home(tmp_path: Path) -> None:
    settings = load_settings({"PACS_HOME": str(tmp_path)})
    assert settings.home == tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path / 'pacs.sqlite3'}"
    assert settings.warehouse_path == tmp_path / "warehouse.duckdb"
    assert settings.orthanc_url == "http://127.0.0.1:8042"
    assert (settings.orthanc_http_port, settings.orthanc_dicom_port) == (8042, 4242)
    assert settings.orthanc_aet == "ORTHANC"
    assert settings.orthanc_stable_age == 5
    assert settings.portal_url == "http://127.0.0.1:5000"
    assert settings.webhook_url == "http://127.0.0.1:5000/api/v1/hooks/orthanc"


def test_home_defaults_to_var_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).home == tmp_path / "var"


def test_environment_overrides_every_default(tmp_path: Path) -> None:
    env = {
        "PACS_HOME": str(tmp_path),
        "PACS_DATABASE_URL": "postgresql+psycopg://pacs@db/pacs",
        "PACS_WAREHOUSE_PATH": str(tmp_path / "w.duckdb"),
        "PACS_ORTHANC_URL": "http://archive:8042/",
        "PACS_ORTHANC_USER": "alice",
        "PACS_ORTHANC_PASSWORD": "s3cret",
        "PACS_ORTHANC_DICOM_PORT": "11112",
        "PACS_ORTHANC_AET": "ARCHIVE1",
        "PACS_ORTHANC_STABLE_AGE": "60",
        "PACS_PORTAL_HOST": "0.0.0.0",
        "PACS_PORTAL_PORT": "8080",
        "PACS_SECRET_KEY": "k",
        "PACS_WEBHOOK_SECRET": "w",
        "PACS_ORTHANC_VIEWER_USER": "ohif",
        "PACS_ORTHANC_VIEWER_PASSWORD": "v",
        "PACS_DICOM_ACCEPT_ANY": "1",
        "PACS_DICOM_CHECK_HOST": "0",
        "PACS_CRITICAL_LIMIT_IMMEDIATE": "15",
        "PACS_CRITICAL_LIMIT_URGENT": "120",
        "PACS_CRITICAL_LIMIT_NON_URGENT": "1440",
        "PACS_CRITICAL_ONCALL": "OnCall@Example.org",
        "PACS_CRITICAL_WEBHOOK_URL": "https://pager.example.org/hook",
        "PACS_CRITICAL_WEBHOOK_SECRET": "c",
    }
    settings = load_settings(env)
    assert settings.orthanc_url == "http://archive:8042"
    assert (settings.orthanc_user, settings.orthanc_password) == ("alice", "s3cret")
    assert settings.orthanc_dicom_port == 11112
    assert settings.orthanc_aet == "ARCHIVE1"
    assert settings.orthanc_stable_age == 60
    assert settings.portal_url == "http://0.0.0.0:8080"
    assert (settings.secret_key, settings.webhook_secret) == ("k", "w")
    assert (settings.orthanc_viewer_user, settings.orthanc_viewer_password) == ("ohif", "v")
    assert settings.dicom_accept_any and not settings.dicom_check_host
    assert settings.database_url.startswith("postgresql")
    assert settings.critical_limits == {"immediate": 15, "urgent": 120, "non_urgent": 1440}
    assert settings.critical_oncall == "oncall@example.org"
    assert settings.critical_webhook_url == "https://pager.example.org/hook"
    assert settings.critical_webhook_secret == "c"
    assert not (tmp_path / "secrets").exists(), "secrets given by the environment are not written"


def test_http_port_moves_the_default_orthanc_url(tmp_path: Path) -> None:
    settings = load_settings({"PACS_HOME": str(tmp_path), "PACS_ORTHANC_HTTP_PORT": "18042"})
    assert settings.orthanc_url == "http://127.0.0.1:18042"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PACS_ORTHANC_HTTP_PORT", "eighty", "not a whole number"),
        ("PACS_ORTHANC_DICOM_PORT", "70000", "not a TCP port"),
        ("PACS_PORTAL_PORT", "0", "at least 1"),
        ("PACS_ORTHANC_STABLE_AGE", "-1", "at least 1"),
        ("PACS_ORTHANC_AET", "A_TITLE_MUCH_TOO_LONG", "not a DICOM AE title"),
        ("PACS_ORTHANC_AET", "", "not a DICOM AE title"),
        ("PACS_ORTHANC_VIEWER_USER", "pacs", "must differ from PACS_ORTHANC_USER"),
        ("PACS_ORTHANC_VIEWER_USER", "a:b", "no colon"),
        ("PACS_DICOM_ACCEPT_ANY", "maybe", "not a yes/no value"),
        ("PACS_WORKLIST_ARRIVING", "halfway", "not one of instance, series, stable"),
        ("PACS_CRITICAL_LIMIT_IMMEDIATE", "0", "at least 1"),
        ("PACS_CRITICAL_LIMIT_URGENT", "soon", "not a whole number"),
        ("PACS_CRITICAL_ONCALL", "the on-call desk", "not an e-mail address"),
        ("PACS_CRITICAL_WEBHOOK_URL", "ftp://pager/hook", "must be an http:// or https:// URL"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as error:
        load_settings({"PACS_HOME": str(tmp_path), name: value})
    assert name in str(error.value)


def test_secrets_are_generated_once_private_and_distinct(tmp_path: Path) -> None:
    first = load_settings({"PACS_HOME": str(tmp_path)})
    second = load_settings({"PACS_HOME": str(tmp_path)})
    assert first.orthanc_password == second.orthanc_password
    assert first.secret_key == second.secret_key
    assert first.webhook_secret == second.webhook_secret
    assert first.orthanc_viewer_password == second.orthanc_viewer_password
    secrets = (
        first.orthanc_password,
        first.orthanc_viewer_password,
        first.secret_key,
        first.webhook_secret,
    )
    assert len(set(secrets)) == 4
    assert (first.orthanc_viewer_user, first.dicom_accept_any, first.dicom_check_host) == (
        "pacs-viewer",
        False,
        True,
    )
    assert len(first.secret_key) >= 40
    for path in (tmp_path / "secrets").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700


def test_each_home_gets_its_own_secrets(tmp_path: Path) -> None:
    one = load_settings({"PACS_HOME": str(tmp_path / "one")})
    two = load_settings({"PACS_HOME": str(tmp_path / "two")})
    assert one.orthanc_password != two.orthanc_password


def test_turnaround_targets_time_zone_and_refresh_interval(tmp_path: Path) -> None:
    defaults = load_settings({"PACS_HOME": str(tmp_path)})
    assert defaults.timezone == "UTC"
    assert defaults.tat_targets == {"STAT": 60, "URGENT": 720, "ROUTINE": 5760}
    assert defaults.warehouse_refresh_every == 300
    settings = load_settings(
        {
            "PACS_HOME": str(tmp_path),
            "PACS_TIMEZONE": "Europe/Paris",
            "PACS_TAT_TARGET_STAT": "30",
            "PACS_WAREHOUSE_REFRESH_EVERY": "60",
        }
    )
    assert settings.timezone == "Europe/Paris"
    assert settings.tat_targets["STAT"] == 30
    assert settings.warehouse_refresh_every == 60
    with pytest.raises(SettingsError, match="PACS_TIMEZONE"):
        load_settings({"PACS_HOME": str(tmp_path), "PACS_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(SettingsError, match="PACS_TAT_TARGET_URGENT"):
        load_settings({"PACS_HOME": str(tmp_path), "PACS_TAT_TARGET_URGENT": "0"})


def test_scaled_out_settings(tmp_path: Path) -> None:
    settings = load_settings({"PACS_HOME": str(tmp_path)})
    assert settings.engine_url == "http://127.0.0.1:4200/api"
    assert settings.prefect_dir == tmp_path / "prefect"
    assert (settings.portal_workers, settings.orthanc_database_url) == (4, "")
    settings = load_settings(
        {
            "PACS_HOME": str(tmp_path),
            "PREFECT_API_URL": "http://engine:4200/api/",
            "PACS_PREFECT_PORT": "4300",
            "PACS_PORTAL_WORKERS": "2",
            "PACS_ORTHANC_DATABASE_URL": "postgresql://pacs:s%40cret@db:5433/orthanc",
        }
    )
    assert settings.engine_url == "http://engine:4200/api"
    assert (settings.prefect_port, settings.portal_workers) == (4300, 2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PACS_ORTHANC_DATABASE_URL", "mysql://db/orthanc"),
        ("PACS_PREFECT_PORT", "70000"),
        ("PACS_PORTAL_WORKERS", "0"),
    ],
)
def test_bad_scaled_out_settings_are_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({"PACS_HOME": str(tmp_path), name: value})


def test_orthanc_keeps_its_index_on_postgresql_when_asked(tmp_path: Path) -> None:
    import json

    from pacs.orthanc_server import render_config

    settings = load_settings(
        {
            "PACS_HOME": str(tmp_path),
            "PACS_ORTHANC_DATABASE_URL": "postgresql://pacs:s%40cret@db:5433/orthanc",
        }
    )
    config = json.loads(render_config(settings))
    assert config["PostgreSQL"] == {
        "EnableIndex": True,
        "EnableStorage": False,
        "Host": "db",
        "Port": 5433,
        "Database": "orthanc",
        "Username": "pacs",
        "Password": "s@cret",
        "Lock": False,
        "IndexConnectionsCount": 4,
    }
    assert config["Plugins"][-1].endswith("libOrthancPostgreSQLIndex.so")
    assert "PostgreSQL" not in json.loads(
        render_config(load_settings({"PACS_HOME": str(tmp_path)}))
    )
