"""The scaled-out platform from the project's own commands, and what survives a kill.

PostgreSQL (three databases), Orthanc on its PostgreSQL index, `pacs engine up` (the
Prefect server on PostgreSQL, deployments registered), two `pacs worker`s and a
two-process `pacs portal`, all on free loopback ports. A burst of studies is sent; one
worker is killed with SIGKILL in the middle of it and the Prefect server is killed and
restarted by its supervisor. Every study must end on the worklist or in quarantine,
exactly once, and the runs must be in the Prefect API, none left Running.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from config.settings import Settings
from pacs.consumer import consumer_tag
from storage.database import open_session
from storage.models.quarantine import QuarantinedStudy
from storage.models.studies import Study
from tests.support import postgres
from tests.support.platform import Platform
from tests.support.services import run_pacs
from tests.support.studies import clone_study, run_storescu, write_files
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow

BURST = 16


@pytest.fixture
def database() -> Iterator[postgres.PostgresServer]:
    require_tool("initdb")
    server = postgres.start_postgres("pacs", "orthanc", "prefect")
    yield server
    server.stop()


@pytest.fixture
def platform(tmp_path: Path, database: postgres.PostgresServer) -> Iterator[Platform]:
    platform = Platform(tmp_path, database)
    try:
        yield platform
    finally:
        platform.stop_all()


def test_a_burst_survives_a_killed_worker_and_restarted_servers(
    platform: Platform, database: postgres.PostgresServer, tmp_path: Path
) -> None:
    upgraded = run_pacs(platform.env, "db", "upgrade")  # what compose's `migrate` service does
    assert upgraded.returncode == 0, upgraded.stderr
    started = platform.start_orthanc()
    assert started.returncode == 0, started.stderr
    plugins = requests.get(
        f"{platform.settings.orthanc_url}/plugins",
        auth=(platform.settings.orthanc_user, platform.settings.orthanc_password),
        timeout=10,
    ).json()
    assert "postgresql-index" in plugins

    platform.start("engine", "engine", "up")
    platform.wait_for_line("engine", "Prefect server ready", timeout=300)
    platform.start("portal", "portal")
    first = platform.start("worker-1", "worker")
    platform.start("worker-2", "worker")
    platform.wait_for_line("worker-1", "pacs: worker", timeout=120)
    platform.wait_for_line("worker-2", "pacs: worker", timeout=120)
    killed_name = platform.log("worker-1").split("pacs: worker ", 1)[1].split()[0]

    studies = [clone_study("DX", PatientID=f"BURST{i:03d}") for i in range(BURST)]
    uids = [datasets[0].StudyInstanceUID for datasets in studies]

    def send_burst() -> None:
        for index, datasets in enumerate(studies):
            run_storescu(platform.settings, write_files(datasets, tmp_path / f"s{index}"))

    sender = threading.Thread(target=send_burst)
    sender.start()
    wait_until(lambda: count_settled(platform.settings, uids) >= 3, 180, "first studies")
    first.send_signal(signal.SIGKILL)  # mid-burst: its claimed rows and runs are orphaned
    server_pid = int((platform.home / "prefect" / "server.pid").read_text())
    os.kill(server_pid, signal.SIGKILL)  # `pacs engine up` restarts it
    sender.join(timeout=300)
    assert not sender.is_alive()

    wait_until(lambda: count_settled(platform.settings, uids) == BURST, 300, "every study")
    with open_session(platform.settings.database_url) as session:
        duplicates = session.execute(
            select(Study.study_instance_uid)
            .group_by(Study.study_instance_uid)
            .having(func.count() > 1)
        ).all()
    assert duplicates == []
    # The supervisor restarts the server within a second of its death and records the new
    # pid once it answers; on a quiet machine the burst can settle before that.
    wait_until(
        lambda: int((platform.home / "prefect" / "server.pid").read_text()) != server_pid,
        120,
        "the Prefect server restarted by its supervisor and answering",
    )
    assert "restarting" in platform.log("engine")

    assert platform.flow_runs("COMPLETED"), "no completed flow run in the Prefect API"
    # The reaper (in the surviving worker) marks the killed consumer's runs Crashed.
    wait_until(
        lambda: (
            not [r for r in platform.flow_runs("RUNNING") if consumer_tag(killed_name) in r["tags"]]
        ),
        240,
        "the killed worker's runs to leave Running",
    )
    status = run_pacs(platform.env, "status")
    assert "pipeline        up" in status.stdout, status.stdout

    # The database and the archive restart: studies sent afterwards still arrive.
    database.restart()
    assert run_pacs(platform.env, "orthanc", "stop").returncode == 0
    assert run_pacs(platform.env, "orthanc", "start").returncode == 0
    later = [clone_study("DX", PatientID=f"LATER{i}") for i in range(3)]
    for index, datasets in enumerate(later):
        run_storescu(platform.settings, write_files(datasets, tmp_path / f"later{index}"))
    later_uids = [datasets[0].StudyInstanceUID for datasets in later]
    wait_until(lambda: count_settled(platform.settings, later_uids) == 3, 240, "later studies")

    # However many workers, a scheduled deployment runs once per scheduled time.
    scheduled = [
        (r["deployment_id"], r["expected_start_time"])
        for r in platform.flow_runs("COMPLETED")
        if r["deployment_id"]
    ]
    assert len(scheduled) == len(set(scheduled))


def count_settled(settings: Settings, uids: list[str]) -> int:
    """Studies of `uids` on the worklist or in quarantine."""
    with open_session(settings.database_url) as session:
        listed = set(
            session.scalars(
                select(Study.study_instance_uid).where(Study.study_instance_uid.in_(uids))
            )
        )
        held = set(
            session.scalars(
                select(QuarantinedStudy.study_instance_uid).where(
                    QuarantinedStudy.study_instance_uid.in_(uids)
                )
            )
        )
    return len(listed | held)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1.0)
