"""Checks of the deployment files: docker-compose.yml, Dockerfile, .dockerignore, prefect.yaml.

No Docker engine runs here: `docker-compose config` validates and interpolates the compose file,
the rest is read as YAML/text.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PREFECT_FILE = ROOT / "prefect.yaml"

SERVICES = {"postgres", "orthanc", "prefect-server", "prefect-worker", "portal"}
# Services that run the project's own image (built from the Dockerfile).
PLATFORM_SERVICES = {"migrate", "prefect-worker", "portal", "order-services"}
SECRETS = {
    "PACS_POSTGRES_PASSWORD": "pg-secret-1",
    "PACS_ORTHANC_PASSWORD": "orthanc-secret-2",
    "PACS_ORTHANC_VIEWER_PASSWORD": "orthanc-viewer-secret-5",
    "PACS_SECRET_KEY": "flask-secret-3",
    "PACS_WEBHOOK_SECRET": "webhook-secret-4",
}
# Every setting config/settings.py reads, plus Prefect's client URL.
PLATFORM_SETTINGS = {
    "PACS_HOME",
    "PACS_DATABASE_URL",
    "PACS_WAREHOUSE_PATH",
    "PACS_ORTHANC_URL",
    "PACS_ORTHANC_USER",
    "PACS_ORTHANC_PASSWORD",
    "PACS_ORTHANC_VIEWER_USER",
    "PACS_ORTHANC_VIEWER_PASSWORD",
    "PACS_ORTHANC_HTTP_PORT",
    "PACS_ORTHANC_DICOM_PORT",
    "PACS_ORTHANC_AET",
    "PACS_ORTHANC_STABLE_AGE",
    "PACS_PORTAL_HOST",
    "PACS_PORTAL_PORT",
    "PACS_SECRET_KEY",
    "PACS_WEBHOOK_SECRET",
    "PACS_HL7_PORT",
    "PACS_HL7_RESULTS_HOST",
    "PACS_HL7_RESULTS_PORT",
    "PACS_MWL_PORT",
    "PACS_MWL_AET",
    "PACS_DICOM_CHECK_HOST",
    "PREFECT_API_URL",
}

needs_compose = pytest.mark.requires("docker-compose")  # `docker-compose config` validates


def _compose(tmp_path: Path, secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config` with only `secrets` as deployment variables.

    An empty --env-file keeps a developer's `.env` out; inherited PACS_*/COMPOSE_* variables
    are dropped so that the result does not depend on the caller's shell.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PACS_", "COMPOSE_", "PREFECT_"))
    }
    env.update(secrets)
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def prefect_project() -> dict[str, Any]:
    return yaml.safe_load(PREFECT_FILE.read_text())


def _published_targets(service: dict[str, Any]) -> set[int]:
    """Container ports a service publishes on the host (short or long port syntax)."""
    targets = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            targets.add(int(port["target"]))
        else:
            container = str(port).rsplit(":", 1)[-1].split("/")[0]
            targets.add(int(container.split("-")[0]))
    return targets


# --- docker-compose.yml, validated by docker-compose itself ---------------------------------


@needs_compose
def test_compose_config_is_valid_with_the_secrets_set(tmp_path: Path) -> None:
    result = _compose(tmp_path, SECRETS)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]

    # The secrets reach the services through interpolation, nowhere hard-coded.
    for name in PLATFORM_SERVICES:
        env = resolved[name]["environment"]
        assert env["PACS_ORTHANC_PASSWORD"] == SECRETS["PACS_ORTHANC_PASSWORD"]
        assert env["PACS_SECRET_KEY"] == SECRETS["PACS_SECRET_KEY"]
        assert env["PACS_WEBHOOK_SECRET"] == SECRETS["PACS_WEBHOOK_SECRET"]
        assert f":{SECRETS['PACS_POSTGRES_PASSWORD']}@postgres:" in env["PACS_DATABASE_URL"]

    # Orthanc's JSON-valued variables stay valid JSON once interpolated.
    orthanc = resolved["orthanc"]["environment"]
    assert json.loads(orthanc["ORTHANC__REGISTERED_USERS"]) == {
        "pacs": SECRETS["PACS_ORTHANC_PASSWORD"],
        "pacs-viewer": SECRETS["PACS_ORTHANC_VIEWER_PASSWORD"],
    }
    assert orthanc["ORTHANC__PACS_PLATFORM__VIEWER_USER"] == "pacs-viewer"
    assert json.loads(orthanc["ORTHANC_JSON"]) == {
        "PacsPlatform": {"WebhookSecret": SECRETS["PACS_WEBHOOK_SECRET"]}
    }
    assert orthanc["ORTHANC__POSTGRESQL__PASSWORD"] == SECRETS["PACS_POSTGRES_PASSWORD"]


@needs_compose
@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_config_fails_without_each_secret(tmp_path: Path, missing: str) -> None:
    secrets = {key: value for key, value in SECRETS.items() if key != missing}
    result = _compose(tmp_path, secrets)
    assert result.returncode != 0, f"config succeeded without {missing}: is it hard-coded?"
    assert missing in result.stderr


# --- docker-compose.yml, read as YAML -------------------------------------------------------


def test_compose_has_the_five_services(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    assert set(compose["services"]) >= SERVICES


def test_orthanc_publishes_dicom_but_not_http(compose: dict[str, Any]) -> None:
    published = _published_targets(compose["services"]["orthanc"])
    assert 4242 in published
    assert 8042 not in published
    for name, service in compose["services"].items():
        assert 8042 not in _published_targets(service), name


def test_platform_services_share_the_same_pacs_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    built = {name for name, service in services.items() if "build" in service}
    assert built == PLATFORM_SERVICES

    environments = []
    for name in sorted(PLATFORM_SERVICES):
        env = services[name]["environment"]
        assert isinstance(env, dict), f"{name}: environment should be a mapping"
        assert set(env) >= PLATFORM_SETTINGS, f"{name} misses {PLATFORM_SETTINGS - set(env)}"
        environments.append({key: value for key, value in env.items() if key.startswith("PACS_")})
    assert all(env == environments[0] for env in environments)

    env = environments[0]
    for secret in (
        "PACS_ORTHANC_PASSWORD",
        "PACS_ORTHANC_VIEWER_PASSWORD",
        "PACS_SECRET_KEY",
        "PACS_WEBHOOK_SECRET",
    ):
        assert env[secret].startswith(f"${{{secret}:?"), f"{secret} must be required, not set"
    assert "${PACS_POSTGRES_PASSWORD:?" in env["PACS_DATABASE_URL"]
    assert env["PACS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["PACS_ORTHANC_URL"] == "http://orthanc:8042"
    assert services["prefect-worker"]["environment"]["PREFECT_API_URL"] == (
        "http://prefect-server:4200/api"
    )


def test_orthanc_configuration(compose: dict[str, Any]) -> None:
    orthanc = compose["services"]["orthanc"]
    env = orthanc["environment"]
    assert orthanc["image"].startswith("orthancteam/orthanc")
    for flag in ("DICOM_WEB_PLUGIN_ENABLED", "POSTGRESQL_PLUGIN_ENABLED", "PYTHON_PLUGIN_ENABLED"):
        assert env[flag] == "true", flag
    assert env["TCP_NODELAY"] == "1"
    assert env["ORTHANC__POSTGRESQL__HOST"] == "postgres"
    assert env["ORTHANC__AUTHENTICATION_ENABLED"] == "true"
    assert env["ORTHANC__PACS_PLATFORM__WEBHOOK_URL"] == "http://portal:5000/api/v1/hooks/orthanc"
    # The DICOM port: registered modalities only, kept in Orthanc's database.
    assert env["ORTHANC__DICOM_ALWAYS_ALLOW_STORE"] == "false"
    assert env["ORTHANC__DICOM_MODALITIES_IN_DATABASE"] == "true"
    # The image reads `*_SECRET` variables as file names under /run/secrets.
    assert not [key for key in env if key.endswith("_SECRET")]
    mounts = {
        volume.split(":")[1]: volume.split(":")[0]
        for volume in orthanc["volumes"]
        if volume.startswith("./")
    }
    assert mounts[env["ORTHANC__PYTHON_SCRIPT"]] == "./orthanc/plugin.py"


def test_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "orthanc", "prefect-server", "prefect-worker", "portal"):
        assert "test" in services[name]["healthcheck"], name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            condition = (
                "service_completed_successfully" if dependency == "migrate" else "service_healthy"
            )
            assert spec == {"condition": condition}, f"{name} -> {dependency}"


def test_the_schema_is_upgraded_before_the_workers_and_the_portal_start(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["pacs", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("prefect-worker", "portal"):
        assert "migrate" in services[name]["depends_on"], name


def test_worker_and_portal_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["prefect-worker"]
    assert worker["command"] == ["pacs", "worker", "--healthcheck"]
    # Scalable: no fixed name, no host port.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "replicas" in worker["deploy"]

    portal = services["portal"]
    assert portal["command"][0] == "gunicorn"
    assert "0.0.0.0:5000" in portal["command"]
    assert portal["command"][-1] == "pacs.wsgi:make_app()"
    assert 5000 in _published_targets(portal)


def test_order_services_publish_hl7_and_the_worklist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    orders = services["order-services"]
    assert orders["command"] == ["pacs", "orders", "serve"]
    assert {2575, 4243} <= _published_targets(orders)
    assert "migrate" in orders["depends_on"]
    assert "2575" in " ".join(orders["healthcheck"]["test"])
    env = orders["environment"]
    assert (env["PACS_HL7_PORT"], env["PACS_MWL_PORT"]) == ("2575", "4243")
    # Behind Docker's proxy a modality's address is not its own: AE titles decide.
    assert env["PACS_DICOM_CHECK_HOST"] == "0"
    assert env["PACS_HL7_RESULTS_HOST"].startswith("${PACS_HL7_RESULTS_HOST:-")
    for name, service in services.items():
        if name != "order-services":
            assert not {2575, 4243} & _published_targets(service), name


# --- Dockerfile and .dockerignore -----------------------------------------------------------


def test_dockerfile_builds_a_non_root_image() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "gunicorn" in text
    # The portal's server and the PostgreSQL driver are the project's own dependencies
    # (`pacs portal`, PACS_DATABASE_URL=postgresql+psycopg://), installed with it.
    dependencies = (ROOT / "pyproject.toml").read_text()
    assert '"gunicorn>=' in dependencies
    assert '"psycopg[binary]>=' in dependencies
    assert "PACS_HOME=/data" in text
    assert "USER pacs" in text


def test_dockerignore_keeps_local_state_out() -> None:
    entries = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", ".env"} <= entries


# --- prefect.yaml ---------------------------------------------------------------------------


def test_prefect_project_file(prefect_project: dict[str, Any]) -> None:
    assert prefect_project["name"]
    assert str(prefect_project["prefect-version"]).startswith("3.")
    assert prefect_project["build"] is None
    assert prefect_project["push"] is None
    assert prefect_project["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PACS_APP_DIR }}"}}
    ]
    deployments = {d["name"]: d for d in prefect_project["deployments"]}
    assert deployments["ingest-study"]["entrypoint"] == "flows/ingest_study.py:ingest_study"
    # Scheduled by the workers (pacs/consumer.py), not the server; `[]` clears old schedules.
    assert all(d.get("schedules", []) == [] for d in deployments.values())
    assert deployments["reconcile-archive"]["schedules"] == []
    assert all(d["work_pool"] == {"name": "pacs"} for d in deployments.values())
    assert "PACS_APP_DIR=/app" in (ROOT / "Dockerfile").read_text()


def test_prefect_accepts_the_project_file(
    prefect_project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = importlib.import_module("prefect.cli.deploy._models")
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.importtools import import_object
    from prefect.utilities.templating import apply_values

    model = models.PrefectYamlModel.model_validate(prefect_project)
    assert model.build is None and model.push is None
    for deployment in model.deployments:
        # Every entrypoint names a real flow of the project.
        path, _, name = deployment.entrypoint.partition(":")
        flow = load_flow_from_entrypoint(f"{ROOT / path}:{name}")
        assert flow.name == deployment.name
    for step in model.pull or []:
        (name, inputs), *_ = step.items()
        assert callable(import_object(name))
        # Resolved from the environment, as the worker does before running the step.
        monkeypatch.setenv("PACS_APP_DIR", "/app")
        assert apply_values(inputs, os.environ) == {"directory": "/app"}
