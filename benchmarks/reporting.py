"""Report save and signing latency through the portal's HTTP API, on one machine.

Starts its own Orthanc (temporary PACS_HOME, free loopback ports) and the portal on a
loopback port, stores N studies (cycling CR, CT, MR, US, DX demo studies: 2 to 61
instances each; or, with `--instances M`, CTs of M instances in series of 300, pixels
thinned to 32x32 since they play no part here) and ingests them. Then, as a radiologist
with a bearer token, for each study: five draft saves (PUT .../report with If-Match; the
first creates the report) and a final signature (POST .../report/finalize), which commits
and returns; the portal's delivery thread then builds the DICOM SR from the evidence
recorded at ingestion and STOWs it. Prints p50/p95 of draft save and sign-final, of the
time from the click to the SR being in the archive (polled by SOP Instance UID), the
delivery's stages (SR build, STOW; and how often evidence was fetched from the archive:
never, for studies ingested with evidence), and as a baseline measured in the same run,
sign-final with the archive unreachable (the SR left in the outbox), then how long the
outbox flow's task takes to deliver those once the archive is back.

    .venv/bin/python benchmarks/reporting.py [--reports 200] [--baseline 40] [--instances M]
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
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
from tests.support.big_studies import BigStudy  # noqa: E402
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


def store_studies(archive: ArchiveClient, count: int, instances: int) -> list[tuple[str, str]]:
    """`count` fresh studies in the archive: (Study Instance UID, Orthanc id) each."""
    studies = []
    for index in range(count):
        if instances:
            big = BigStudy(instances, pixel_step=8)
            big.store(archive)
            study_uid = big.study_instance_uid
        else:
            datasets = clone_study(MODALITIES[index % len(MODALITIES)])
            answer = archive.store_instances(part10_of(ds) for ds in datasets)
            assert not answer.get("00081198", {}).get("Value"), answer
            study_uid = datasets[0].StudyInstanceUID
        studies.append((study_uid, archive.find_study_ids(study_uid)[0]))
    return studies


def wait_for_sr(archive: ArchiveClient, sop_uid: str, timeout: float = 120.0) -> float:
    """Poll the archive until it has the SR; returns the time.perf_counter() it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if archive.find("Instance", {"SOPInstanceUID": sop_uid}, expand=False):
            return time.perf_counter()
        time.sleep(0.02)
    raise TimeoutError(f"SR {sop_uid} not in the archive after {timeout} s")


def serve(app, port: int) -> tuple[object, threading.Thread]:
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def report_on(
    http: requests.Session,
    url: str,
    study_uid: str,
    saves: list[float],
    signs: list[float],
    archive: ArchiveClient | None = None,
    delivered: list[float] | None = None,
) -> dict:
    """Draft saves and a final signature; given the archive, also the time from the click
    to the SR being in it (into `delivered`)."""
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
    answer = response.json()
    if archive is not None and delivered is not None:
        sop_uid = answer["documents"][-1]["sop_instance_uid"]
        delivered.append(wait_for_sr(archive, sop_uid) - started)
    return answer


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    logging.getLogger("portal").setLevel(logging.ERROR)  # nor per SR left in the outbox
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, help="default 200, or 20 with --instances")
    parser.add_argument("--baseline", type=int, help="default 40, or 5 with --instances")
    parser.add_argument("--instances", type=int, default=0, help="CT studies of this size")
    args = parser.parse_args()
    reports = args.reports or (20 if args.instances else 200)
    baseline = args.baseline or (5 if args.instances else 40)

    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        # No stable-study notifications while it runs: ingestion is not what is measured.
        settings = load_settings(make_env(Path(tmp) / "pacs", PACS_ORTHANC_STABLE_AGE="3600"))
        process = start_orthanc(settings)
        try:
            run(settings, reports, baseline, args.instances)
        finally:
            stop_orthanc(settings)
            process.wait(timeout=60)


def run(settings, reports: int, baseline: int, instances: int) -> None:
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
    kinds = f"CT of {instances} instances" if instances else ", ".join(MODALITIES) + " in turn"
    print(f"storing {total} studies ({kinds}) ...", flush=True)
    started = time.perf_counter()
    with ArchiveClient.from_settings(settings) as archive:
        studies = store_studies(archive, total, instances)
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

        archive = ArchiveClient.from_settings(settings)
        report_on(http, url, studies[0][0], [], [], archive, [])  # warm-up, delivered
        for clock in (fetch, build, stow):
            clock.seconds.clear()

        print(f"\n{reports} reports, {SAVES_PER_REPORT} draft saves and a final signature each")
        saves: list[float] = []
        signs: list[float] = []
        delivered: list[float] = []
        for study_uid, _ in studies[1 : reports + 1]:
            report_on(http, url, study_uid, saves, signs, archive, delivered)
        print(summary("draft save (PUT .../report)", saves, "goal p95 <= 50 ms"))
        print(summary("sign-final (commit; the SR follows)", signs, "goal p95 <= 100 ms"))
        print(summary("click -> SR in the archive", delivered, "goal p95 <= 2 s"))
        print(summary("  delivery: SR build (highdicom)", build.seconds))
        print(summary("  delivery: STOW-RS to Orthanc", stow.seconds))
        print(f"  evidence fetched from the archive: {len(fetch.seconds)} times (0 expected)")

        print(f"\nbaseline: {baseline} final signatures with the archive unreachable (outbox)")
        down_url = f"http://127.0.0.1:{down_port}"
        down_signs: list[float] = []
        for study_uid, _ in studies[reports + 1 :]:
            report_on(http, down_url, study_uid, [], down_signs)
        time.sleep(1)  # the down portal's delivery attempts fail at once
        print(summary("sign-final, archive down (commit + outbox)", down_signs))
        started = time.perf_counter()
        outcome = send_pending_reports.fn(settings)
        elapsed = time.perf_counter() - started
        print(
            f"  outbox delivered {outcome.sent} SRs once the archive was back, "
            f"{1000 * elapsed / max(outcome.sent, 1):.1f} ms each; {len(outcome.failed)} failed"
        )
        ratio = percentile(signs, 0.95) / percentile(down_signs, 0.95)
        print(f"  sign-final p95, archive up / archive down: {ratio:.1f}x")
        documents = archive.find("Instance", {"Modality": "SR"}, expand=False)
        archive.close()
        print(f"\nSR documents in the archive: {len(documents)} (expected {total})")
        print("seed system's promise: report save < 500 ms")
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        for server, thread in servers:
            server.shutdown()
            thread.join(timeout=10)
            server.server_close()


if __name__ == "__main__":
    main()
