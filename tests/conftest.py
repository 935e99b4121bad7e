"""Shared fixtures: a real Orthanc on free loopback ports with a temporary PACS_HOME, a
Prefect server, Chromium, the portal with a user per role, the embedded pipeline. Helpers
are in `tests/support/`."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from config.settings import Settings, load_settings
from core.accounts import hash_password
from pacs.orthanc_server import start_orthanc, stop_orthanc
from pacs.pipeline import EmbeddedPipeline
from portal import create_app
from storage.archive import ArchiveClient
from tests.support.apps import add_users_and_studies
from tests.support.browser import CHROMIUM_ARGS
from tests.support.databases import drop_database, new_database, stop_postgres_server
from tests.support.services import make_env, start_prefect_server
from tests.support.studies import register_test_callers
from tests.support.tools import CHROMIUM, require_tool
from tests.support.users import PASSWORD


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_postgres_server()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.requires(tool)`: skipped without the tool, failed under CI."""
    for mark in item.iter_markers("requires"):
        require_tool(*mark.args)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.requires("initdb"))])
def database_backend(request: pytest.FixtureRequest) -> str:
    """Each test that uses a database (through `database_url`) runs on both backends."""
    return request.param


@pytest.fixture
def database_url(tmp_path: Path, database_backend: str) -> Iterator[str]:
    """A database of this test's own at this release's schema, on `database_backend`."""
    url = new_database(tmp_path / "pacs.sqlite3", database_backend)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def orthanc_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of the session's Orthanc, started from the project's own template."""
    env = make_env(tmp_path_factory.mktemp("pacs-home"))
    settings = load_settings(env)
    register_test_callers(settings)
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


@pytest.fixture(scope="session")
def settings(orthanc_env: dict[str, str]) -> Settings:
    return load_settings(orthanc_env)


@pytest.fixture
def archive(settings: Settings) -> Iterator[ArchiveClient]:
    with ArchiveClient.from_settings(settings) as client:
        yield client


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium for all browser tests: Playwright's sync API allows a
    single driver per process, so every test module shares this one."""
    require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One real bcrypt hash of PASSWORD: hashing costs ~0.25 s, six users a test add up."""
    return hash_password(PASSWORD)


@pytest.fixture
def app(
    tmp_path: Path, password_hash: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """The portal (no archive) with a user per role, a second radiologist and 30 studies."""
    monkeypatch.setattr("storage.accounts.hash_password", lambda password: password_hash)
    settings = load_settings(
        make_env(tmp_path, PACS_IMPORT_RADIOLOGISTS="1", PACS_DATABASE_URL=database_url)
    )
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    add_users_and_studies(app)
    yield app


@pytest.fixture
def pipeline_settings(
    orthanc_env: dict[str, str],
    prefect_api: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The session's archive with a database of this test's own; flows read it from the env."""
    env = {**orthanc_env, "PACS_DATABASE_URL": database_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(env)


@pytest.fixture
def portal(pipeline_settings: Settings) -> Iterator[EmbeddedPipeline]:
    """The portal (webhook) with the embedded pipeline, as `pacs up` runs them."""
    pipeline = EmbeddedPipeline(reconcile_every=3600)
    pipeline.start()
    # The start-up reconciliation ingests every study earlier tests left in the shared
    # archive; a test's own study must not wait behind them.
    assert pipeline.caught_up.wait(180), "the pipeline did not finish its start-up catch-up"
    app = create_app({"PACS_SETTINGS": pipeline_settings, "PACS_PIPELINE": pipeline})
    server = make_server("127.0.0.1", pipeline_settings.portal_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield pipeline
    server.shutdown()
    thread.join()
    server.server_close()
    pipeline.stop()
