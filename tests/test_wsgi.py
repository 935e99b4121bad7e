"""The portal's WSGI entry: gunicorn's `pacs.wsgi:make_app()` gets the pipeline dispatcher,
while the portal itself starts without the pipeline or Prefect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import load_settings
from pacs.pipeline import DeploymentDispatcher, EmbeddedPipeline
from pacs.wsgi import make_app
from tests.support.services import make_env

STARTS_WITHOUT_THE_PIPELINE = """
import sys
from config.settings import load_settings
from portal import create_app
app = create_app({"PACS_SETTINGS": load_settings()})
assert app.extensions["pacs_dispatcher"] is None
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("prefect", "pacs", "flows", "tasks"))
assert not loaded, loaded
"""


def test_the_portal_starts_without_the_pipeline_or_prefect(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", STARTS_WITHOUT_THE_PIPELINE],
        env={**make_env(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_make_app_hands_work_to_the_deployments_when_prefect_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in make_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert isinstance(make_app().extensions["pacs_dispatcher"], DeploymentDispatcher)
    monkeypatch.delenv("PREFECT_API_URL")
    assert make_app().extensions["pacs_dispatcher"] is None


def test_make_app_takes_the_embedded_pipeline_of_pacs_up(tmp_path: Path) -> None:
    pipeline = EmbeddedPipeline()  # not started: only handed over
    app = make_app(load_settings(make_env(tmp_path)), pipeline)
    assert app.extensions["pacs_dispatcher"] is pipeline
