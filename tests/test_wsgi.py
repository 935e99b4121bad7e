"""The portal's WSGI entry: gunicorn's `pacs.wsgi:make_app()` gets the pipeline dispatcher,
while the portal itself starts without the pipeline or Prefect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import load_settings
from pacs.pipeline import EmbeddedPipeline
from pacs.wsgi import make_app
from storage.database import open_session
from storage.pipeline_queue import QueueDispatcher, count_queued
from tests.support.services import make_env

STARTS_WITHOUT_THE_PIPELINE = """
import sys
from config.settings import load_settings
from portal import create_app
app = create_app({"PACS_SETTINGS": load_settings()})
assert app.extensions["pacs_dispatcher"] is None
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("prefect", "pacs", "flows", "tasks"))
assert not loaded, loaded
from pacs.wsgi import make_app
make_app().extensions["pacs_dispatcher"].submit("0" * 8 + "-1" * 4)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("prefect", "flows", "tasks"))
assert not loaded, loaded
"""


def run_in_new_process(script: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**make_env(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_portal_starts_without_the_pipeline_or_prefect(tmp_path: Path) -> None:
    run_in_new_process(STARTS_WITHOUT_THE_PIPELINE, tmp_path)


SETS_ITS_COLLECTOR = """
import gc
from pacs.wsgi import make_app
assert gc.get_threshold()[0] == 700 and gc.get_freeze_count() == 0
make_app()
assert gc.get_threshold() == (50_000, 20, 100), gc.get_threshold()
assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()  # the start-up heap
"""


def test_a_portal_process_sets_its_garbage_collector_for_serving_once_started(
    tmp_path: Path,
) -> None:
    run_in_new_process(SETS_ITS_COLLECTOR, tmp_path)


def test_make_app_queues_work_for_the_workers_in_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in make_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    dispatcher = make_app().extensions["pacs_dispatcher"]
    assert isinstance(dispatcher, QueueDispatcher)
    dispatcher.submit("0" * 8 + "-11111111-22222222-33333333-44444444")
    dispatcher.submit("0" * 8 + "-11111111-22222222-33333333-44444444")  # repeated: once
    dispatcher.submit_export(7)
    with open_session(load_settings().database_url) as session:
        assert count_queued(session) == {"study": 1, "export": 1}


def test_make_app_takes_the_embedded_pipeline_of_pacs_up(tmp_path: Path) -> None:
    pipeline = EmbeddedPipeline()  # not started: only handed over
    app = make_app(load_settings(make_env(tmp_path)), pipeline)
    assert app.extensions["pacs_dispatcher"] is pipeline
