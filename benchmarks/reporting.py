"""Report save and signing latency through the portal's HTTP API, on one machine.

Starts its own Orthanc (temporary PACS_HOME, free loopback ports) and the portal on a
loopback port, stores N studies (cycling CR, CT, MR, US, DX demo studies: 2 to 61
instances each) and ingests them. Then, as a radiologist with a bearer token, for each
study: five draft saves (PUT .../report with If-Match; the first creates the report) and
a final signature (POST .../report/finalize), which commits, builds the DICOM SR from
the study's instances in the archive and STOWs it before answering. Prints p50/p95 of
draft save and sign-final, the sign-final stages (evidence fetch, SR build, STOW), and
as a baseline measured in the same run, sign-final with the archive unreachable (the
signature is committed and the SR left in the outbox), then how long the outbox takes
to deliver those once the archive is back.

    .venv/bin/python benchmarks/reporting.py [--reports 200] [--baseline 40]
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import requests
from werkzeug.serving import make_server

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import storage.report_archive as report_archive  # noqa: E402
from config.settings import load_settings  # noqa: E402
from core.accounts import Role  # noqa: E402
from core.ingest import assess_study  # noqa: E402
from pacs.orthanc_server import start_orthanc, stop_orthanc  # noqa: E402
from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from storage.accounts import create_user  # noqa: E402
from storage.archive import ArchiveClient  # noqa: E402
from storage.studies import save_assessment  # noqa: E402
from tasks.reports import send_pending_reports  # noqa: E402
from tests.support.reports import part10_of  # noqa: E402
from tests.support.services import find_free_port, make_env  # noqa: E402
from tests.support.studies import clone_study  # noqa: E402

MODALITIES = ["CR", "CT", "MR", "US", "DX"]
PASSWORD = "benchmark-passphrase-1"
SAVES_PER_REPORT = 5
FINDINGS = "Lungs clear. No pleural effusion. Heart size normal. Bones intact."


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(name: str, seconds: list[float], goal: str = "") -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {name:44} p50 {percentile(ms, 0.5):7.1f} ms  p95 {percentile(ms, 0.95):7.1f} ms"
        f"  max {max(ms):7.1f} ms  n={len(ms)}{'  ' + goal if goal else ''}"
    )


class StageClock:
    """Times each call of a function (wrapped in place) for the sign-final breakdown."""

    def __init__(self, owner: object, name: str) -> None:
        self.seconds: list[float] = []
        function = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - started)

        setattr(owner, name, timed)


def store_studies(archive: ArchiveClient, count: int) -> list[tuple[str, str]]:
    """`count` fresh studies in the archive: (Study Instance UID, Orthanc id) each."""
    studies = []
    for index in range(count):
        datasets = clone_study(MODALITIES[index % len(MODALITIES)])
        answer = archive.store_instances(part10_of(ds) for ds in datasets)
        assert not answer.get("00081198", {}).get("Value"), answer
        orthanc_id = archive.find_study_ids(datasets[0].StudyInstanceUID)[0]
        studies.append((datasets[0].StudyInstanceUID, orthanc_id))
    return studies


def serve(app, port: int) -> tuple[object, threading.Thread]:
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def report_on(
    http: requests.Session, url: str, study_uid: str, saves: list[float], signs: list[float]
) -> dict:
    report = f"{url}/api/v1/studies/{study_uid}/report"
    etag = '"0"'
    for number in range(SAVES_PER_REPORT):
        body = {"technique": "Standard protocol.", "findings": FINDINGS[: 20 + 10 * number]}
        started = time.perf_counter()
        response = http.put(report, json=body, headers={"If-Match": etag})
        saves.append(time.perf_counter() - started)
        response.raise_for_status()
        etag = response.headers["ETag"]
    body = {"technique": "Standard protocol.", "findings": FINDINGS, "impression": "Normal."}
    etag = http.put(report, json=body, headers={"If-Match": etag}).headers["ETag"]
    started = time.perf_counter()
    response = http.post(f"{report}/finalize", headers={"If-Match": etag})
    signs.append(time.perf_counter() - started)
    response.raise_for_status()
    return response.json()


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    logging.getLogger("portal").setLevel(logging.ERROR)  # nor per SR left in the outbox
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--baseline", type=int, default=40)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        # No stable-study notifications while it runs: ingestion is not what is measured.
        settings = load_settings(make_env(Path(tmp) / "pacs", PACS_ORTHANC_STABLE_AGE="3600"))
        process = start_orthanc(settings)
        try:
            run(settings, args.reports, args.baseline)
        finally:
            stop_orthanc(settings)
            process.wait(timeout=60)


def run(settings, reports: int, baseline: int) -> None:
    now = datetime.datetime.now(datetime.UTC)
    app = create_app({"PACS_SETTINGS": settings})
    # The same database behind a portal whose archive is a closed port.
    down_settings = replace(settings, orthanc_url=f"http://127.0.0.1:{find_free_port()}")
    down_app = create_app({"PACS_SETTINGS": down_settings})
    with app.app_context():
        create_user(db.session, "rad@example.org", PASSWORD, Role.RADIOLOGIST, now,
                    display_name="Ada Lovelace")  # fmt: skip
        db.session.commit()

    total = reports + baseline + 1  # one to warm up
    print(f"storing {total} studies ({', '.join(MODALITIES)} in turn) ...", flush=True)
    started = time.perf_counter()
    with ArchiveClient.from_settings(settings) as archive:
        studies = store_studies(archive, total)
        instances = archive.get_statistics()["CountInstances"]
        print(f"  {instances} instances in {time.perf_counter() - started:.1f} s", flush=True)
        with app.app_context():
            for _, orthanc_id in studies:
                assessment = assess_study(archive.get_archived_study(orthanc_id))
                save_assessment(db.session, assessment, now)
            db.session.commit()

    fetch = StageClock(ArchiveClient, "get_study_instances_tags")
    build = StageClock(report_archive, "build_report_sr")
    stow = StageClock(ArchiveClient, "store_instances")
    port, down_port = find_free_port(), find_free_port()
    servers = [serve(app, port), serve(down_app, down_port)]
    try:
        http = requests.Session()
        url = f"http://127.0.0.1:{port}"
        token = http.post(
            f"{url}/api/v1/auth/token", json={"email": "rad@example.org", "password": PASSWORD}
        ).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"

        warm = report_on(http, url, studies[0][0], [], [])
        assert warm["archived"], "the warm-up report did not reach the archive"
        for clock in (fetch, build, stow):
            clock.seconds.clear()

        print(f"\n{reports} reports, {SAVES_PER_REPORT} draft saves and a final signature each")
        saves: list[float] = []
        signs: list[float] = []
        for study_uid, _ in studies[1 : reports + 1]:
            answer = report_on(http, url, study_uid, saves, signs)
            assert answer["archived"], f"report of {study_uid} not archived"
        print(summary("draft save (PUT .../report)", saves, "goal p95 <= 50 ms"))
        print(summary("sign-final incl. SR build + STOW", signs, "goal p95 <= 300 ms"))
        print(summary("  of which: evidence from the archive", fetch.seconds))
        print(summary("  of which: SR build (highdicom)", build.seconds))
        print(summary("  of which: STOW-RS to Orthanc", stow.seconds))

        print(f"\nbaseline: {baseline} final signatures with the archive unreachable (outbox)")
        down_url = f"http://127.0.0.1:{down_port}"
        down_signs: list[float] = []
        for study_uid, _ in studies[reports + 1 :]:
            answer = report_on(http, down_url, study_uid, [], down_signs)
            assert not answer["archived"]
        print(summary("sign-final, archive down (commit + outbox)", down_signs))
        started = time.perf_counter()
        outcome = send_pending_reports.fn(settings)
        elapsed = time.perf_counter() - started
        print(
            f"  outbox delivered {outcome.sent} SRs once the archive was back, "
            f"{1000 * elapsed / max(outcome.sent, 1):.1f} ms each; {len(outcome.failed)} failed"
        )
        ratio = percentile(signs, 0.95) / percentile(down_signs, 0.95)
        print(f"  sign-final p95 with the STOW / without: {ratio:.1f}x")
        with ArchiveClient.from_settings(settings) as archive:
            documents = archive.find("Instance", {"Modality": "SR"}, expand=False)
        print(f"\nSR documents in the archive: {len(documents)} (expected {total})")
        print("seed system's promise: report save < 500 ms")
    finally:
        for server, thread in servers:
            server.shutdown()
            thread.join(timeout=10)
            server.server_close()


if __name__ == "__main__":
    main()
