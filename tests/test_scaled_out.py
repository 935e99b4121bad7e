"""The scaled-out platform from the project's own commands, and what survives a kill.

PostgreSQL (three databases), Orthanc on its PostgreSQL index, `pacs engine up` (the
Prefect server on PostgreSQL, deployments registered), two `pacs worker`s and a
two-process `pacs portal`, all on free loopback ports. A burst of studies is sent; one
worker is killed with SIGKILL in the middle of it and the Prefect server is killed and
restarted by its supervisor. Every study must end on the worklist or in quarantine,
exactly once, and the runs must be in the Prefect API, none left Running.
"""

from __future__ import annotations

import datetime
import os
import signal
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
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
    platform.wait_for_portal(timeout=120)
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
    reader = sign_in(platform)
    assert_listed_by_the_portal(platform, reader, BURST)
    status = run_pacs(platform.env, "status")
    assert "pipeline        up" in status.stdout, status.stdout

    # One report signed while the archive is up, one while it is down: after the
    # restarts below, each is in the archive as exactly one SR (the outbox's retries
    # and the portal's own attempt do not make a second one).
    sign_final(platform, reader, uids[0])
    assert run_pacs(platform.env, "orthanc", "stop").returncode == 0
    sign_final(platform, reader, uids[1])
    # The database and the archive restart: studies sent afterwards still arrive.
    database.restart()
    assert run_pacs(platform.env, "orthanc", "start").returncode == 0
    later = [clone_study("DX", PatientID=f"LATER{i}") for i in range(3)]
    for index, datasets in enumerate(later):
        run_storescu(platform.settings, write_files(datasets, tmp_path / f"later{index}"))
    later_uids = [datasets[0].StudyInstanceUID for datasets in later]
    wait_until(lambda: count_settled(platform.settings, later_uids) == 3, 240, "later studies")
    wait_until(
        lambda: count_archived_reports(platform.settings, uids[1]) > 0,
        240,
        "the report signed while the archive was down to reach it (the outbox, every minute)",
    )
    time.sleep(65)  # one more outbox run: it must not send either report again
    assert [count_archived_reports(platform.settings, uid) for uid in uids[:2]] == [1, 1]

    # However many workers, each scheduled flow runs once a minute: one worker takes each
    # turn (a second run of a turn would start within seconds of the first).
    for flow_name in ("reconcile-archive", "archive-reports", "escalate-critical-results"):
        starts = sorted(
            datetime.datetime.fromisoformat(run["start_time"])
            for run in platform.flow_runs(flow_name=flow_name)
            if run["start_time"]
        )
        assert len(starts) >= 3, (flow_name, starts)
        gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(starts)]
        assert min(gaps) > 45, (flow_name, gaps)


def sign_in(platform: Platform) -> dict[str, str]:
    """A radiologist's bearer token from the two-process portal."""
    email, password = "reader@scaled.example", "a-scaled-out-passphrase-1"
    added = run_pacs(
        platform.env, "user", "add", email, "--role", "radiologist", stdin=password + "\n"
    )
    assert added.returncode == 0, added.stderr
    answer = requests.post(
        f"{platform.portal_url}/api/v1/auth/token",
        json={"email": email, "password": password},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def assert_listed_by_the_portal(platform: Platform, reader: dict[str, str], count: int) -> None:
    listed = requests.get(
        f"{platform.portal_url}/api/v1/studies",
        params={"q": "BURST", "per_page": 100},
        headers=reader,
        timeout=30,
    )
    assert listed.status_code == 200, listed.text
    with open_session(platform.settings.database_url) as session:
        on_worklist = session.scalar(
            select(func.count()).select_from(Study).where(Study.patient_id.like("BURST%"))
        )
    assert listed.json()["total"] == on_worklist == count


def sign_final(platform: Platform, reader: dict[str, str], study_uid: str) -> None:
    url = f"{platform.portal_url}/api/v1/studies/{study_uid}/report"
    etag = requests.get(url, headers=reader, timeout=30).headers["ETag"]
    saved = requests.put(
        url,
        json={"findings": "No acute abnormality.", "impression": "Normal."},
        headers={**reader, "If-Match": etag},
        timeout=30,
    )
    assert saved.status_code == 200, saved.text
    signed = requests.post(
        f"{url}/finalize", headers={**reader, "If-Match": saved.headers["ETag"]}, timeout=30
    )
    assert signed.status_code == 201, signed.text


def count_archived_reports(settings: Settings, study_uid: str) -> int:
    """SR instances of the study in the archive (0 while Orthanc is down)."""
    try:
        found = requests.post(
            f"{settings.orthanc_url}/tools/find",
            json={
                "Level": "Instance",
                "Query": {"StudyInstanceUID": study_uid, "Modality": "SR"},
            },
            auth=(settings.orthanc_user, settings.orthanc_password),
            timeout=10,
        )
    except requests.ConnectionError:
        return 0
    return len(found.json()) if found.ok else 0


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
