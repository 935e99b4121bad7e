"""A whole site round trip: the demo, signed reports, `pacs backup` while studies arrive,
the site wiped, `pacs restore` into an empty PACS_HOME, and `pacs up` serving every study,
report, SR, audit event and user that was backed up."""

from __future__ import annotations

import datetime
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from config.settings import Settings, load_settings
from core.accounts import Role
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.database_backup import summarize_database
from tests.support.services import PACS_COMMAND, make_env, run_pacs
from tests.support.studies import (
    clone_study,
    demo_studies,
    register_test_callers,
    run_storescu,
    write_files,
)

pytestmark = pytest.mark.slow  # two `pacs up`, the demo, a backup and a restore

PASSWORD = "round-trip-passphrase"
REPORT = {"findings": "No focal lesion.", "impression": "Normal study."}
# Rows the restore itself writes: the pipeline's cursor (the rebuilt archive numbers its
# changes anew) and the studies it retries (those arriving during the backup).
RESTORE_WRITES = {"pipeline_state", "ingest_retries"}
ARRIVALS = 30  # at most: studies are sent one after the other until the backup ends


@contextmanager
def platform(env: dict[str, str]) -> Iterator[Settings]:
    """`pacs up` on `env`'s PACS_HOME until the block ends (SIGTERM, as Ctrl-C)."""
    settings = load_settings(env)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    log = (settings.home.parent / f"up-{settings.home.name}.log").open("ab")
    process = subprocess.Popen(
        [str(PACS_COMMAND), "up"], env={**clean, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                requests.get(f"{settings.portal_url}/api/v1/openapi.json", timeout=2)
                break
            except requests.ConnectionError:
                assert process.poll() is None, read_log(settings)
                assert time.monotonic() < deadline, "the portal never answered"
                time.sleep(0.3)
        yield settings
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode == 0, read_log(settings)


def read_log(settings: Settings) -> str:
    return (settings.home.parent / f"up-{settings.home.name}.log").read_text()[-3000:]


def sign_in(settings: Settings) -> dict[str, str]:
    answer = requests.post(
        f"{settings.portal_url}/api/v1/auth/token",
        json={"email": "rad@site.example", "password": PASSWORD},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def sign_final_report(settings: Settings, auth: dict[str, str], study_uid: str) -> None:
    api = f"{settings.portal_url}/api/v1/studies/{study_uid}/report"
    saved = requests.put(api, json=REPORT, headers={**auth, "If-Match": '"0"'}, timeout=30)
    assert saved.status_code == 200, saved.text
    final = requests.post(
        f"{api}/finalize", headers={**auth, "If-Match": saved.headers["ETag"]}, timeout=60
    )
    assert final.status_code == 201, final.text


def read_report(settings: Settings, auth: dict[str, str], study_uid: str) -> dict:
    api = f"{settings.portal_url}/api/v1/studies/{study_uid}/report"
    answer = requests.get(api, headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def known_studies(database: Path) -> dict[str, str]:
    """Orthanc id -> status of every study of a SQLite database, quarantined ones included
    (the demo quarantines two)."""
    with sqlite3.connect(database) as connection:
        held = dict(connection.execute("SELECT orthanc_id, 'quarantined' FROM quarantine"))
        return held | dict(connection.execute("SELECT orthanc_id, status FROM studies"))


def list_instances(settings: Settings) -> set[str]:
    with ArchiveClient.from_settings(settings) as client:
        return set(client.get_json("/instances"))


def test_a_site_backed_up_while_studies_arrive_comes_back_whole(tmp_path: Path) -> None:
    env = make_env(tmp_path / "site")
    settings = load_settings(env)
    register_test_callers(settings)
    with open_session(settings.database_url) as session:
        create_user(
            session,
            "rad@site.example",
            PASSWORD,
            Role.RADIOLOGIST,
            datetime.datetime.now(datetime.UTC),
        )
    demo_uids = [study.study_instance_uid for study in demo_studies()]

    with platform(env) as settings:
        demo = run_pacs(env, "demo")
        assert demo.returncode == 0, demo.stderr
        wait_until(
            lambda: len(known_studies(settings.home / "pacs.sqlite3")) >= len(demo_uids),
            240,
            "the demo never landed",
        )
        auth = sign_in(settings)
        signed = demo_uids[:2]
        for study_uid in signed:
            sign_final_report(settings, auth, study_uid)
        wait_until(
            lambda: all(read_report(settings, auth, uid)["archived"] for uid in signed),
            120,
            "the SRs never reached the archive",
        )
        before = list_instances(settings)
        with sqlite3.connect(settings.home / "pacs.sqlite3") as connection:
            (documents,) = connection.execute("SELECT count(*) FROM report_documents").fetchone()
        connection.close()

        # Studies keep arriving by C-STORE, one after the other, while the backup runs.
        backing_up = threading.Event()
        backing_up.set()

        def keep_sending() -> None:
            for n in range(ARRIVALS):
                if not backing_up.is_set():
                    return
                datasets = clone_study(("DX", "CR", "CT")[n % 3], limit=3)
                run_storescu(settings, write_files(datasets, tmp_path / f"arriving-{n}"))

        arriving = threading.Thread(target=keep_sending)
        arriving.start()
        started = time.monotonic()
        done = run_pacs(env, "backup", str(tmp_path / "backups"))
        backup_seconds = time.monotonic() - started
        backing_up.clear()
        arriving.join(timeout=120)
        assert done.returncode == 0, done.stderr

    (backup,) = (tmp_path / "backups").iterdir()
    manifest = json.loads((backup / "manifest.json").read_text())
    tables = manifest["database"]["tables"]
    backed_up = manifest["archive"]["studies"]
    instances = {i for study in backed_up.values() for i in study}
    assert before <= instances, "everything stored before the backup began is in it"
    assert tables["users"]["rows"] == 7  # the demo's six and ours
    # The demo history signs reports of its own besides our two.
    assert tables["report_documents"]["rows"] == documents and tables["audit_events"]["rows"] > 0
    in_database = known_studies(backup / "database.sqlite3")
    assert set(in_database) <= set(backed_up), "every study the database names has its images"
    pending = manifest["archive"]["pending_studies"]
    print(f"{len(backed_up)} studies backed up, {len(in_database)} in its database, {pending=}")
    with sqlite3.connect(backup / "database.sqlite3") as connection:
        sr_uids = [
            uid
            for (uid,) in connection.execute(
                "SELECT sop_instance_uid FROM report_documents WHERE archived_at IS NOT NULL"
            )
        ]

    subprocess.run(["rm", "-rf", str(tmp_path / "site")], check=True)  # the site is lost
    home = tmp_path / "restored"
    restored_env = make_env(home, PACS_DATABASE_URL=f"sqlite:///{home / 'pacs.sqlite3'}")
    started = time.monotonic()
    restored = run_pacs(restored_env, "restore", str(backup))
    restore_seconds = time.monotonic() - started
    assert restored.returncode == 0, restored.stderr
    print(f"backup {backup_seconds:.1f} s, restore {restore_seconds:.1f} s (wall, `pacs` runs)")
    print(done.stdout.strip(), restored.stdout.strip(), sep="\n")

    restored_settings = load_settings(restored_env)
    after = {t: s.to_json() for t, s in summarize_database(restored_settings.database_url).items()}
    for table in RESTORE_WRITES:
        after.pop(table), tables.pop(table)
    assert after == tables, "every row of every table is back, the same"
    verified = run_pacs(restored_env, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    with platform(restored_env) as settings:
        assert list_instances(settings) == instances
        with ArchiveClient.from_settings(settings) as client:
            for uid in sr_uids:
                assert client.find("Instance", {"SOPInstanceUID": uid}), f"SR {uid} is back"
        auth = sign_in(settings)
        for study_uid in signed:
            report = read_report(settings, auth, study_uid)
            assert report["status"] == "final" and report["archived"], report
            assert report["sections"]["findings"] == REPORT["findings"]
        for study_uid in signed:  # the restored portal serves what the restored rows say
            listed = requests.get(
                f"{settings.portal_url}/api/v1/studies/{study_uid}", headers=auth, timeout=30
            )
            assert listed.status_code == 200 and listed.json()["status"] == "final", listed.text
        # Studies that had only reached the archive at the snapshot are ingested again.
        wait_until(
            lambda: set(known_studies(settings.home / "pacs.sqlite3")) == set(backed_up),
            120,
            "the studies arriving during the backup never reached the restored worklist",
        )
        statuses = known_studies(settings.home / "pacs.sqlite3")
        # Studies that changed after the snapshot (`pending`) are ingested again by design;
        # every other study keeps the status it was backed up with.
        changed = {
            s: (was, statuses[s])
            for s, was in in_database.items()
            if statuses[s] != was and s not in pending
        }
        assert changed == {}
