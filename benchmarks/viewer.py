"""The viewer's speed: first image of a 200-slice CT, and the proxy's cost on frames.

Starts its own Orthanc (temporary PACS_HOME, free loopback ports), stores a 200-slice
CT made from the demo CT head, and serves the portal with waitress as `pacs up` does.
Then, in one run:

- headless Debian Chromium signs in and opens the study in the viewer: the time from
  asking for the viewer URL to the first rendered image (OHIF's "displaySetsToFirstImage"
  console mark, checked against the canvas not being blank), for the first visit (empty
  browser cache), for a study opened for the first time with the browser's cache warm
  (what a radiologist does all day: the portal's copy of the series metadata forgotten
  before each visit, then prepared as the pipeline does at ingestion, or in alternate
  visits not, the baseline) and for later visits of the same study (median of several);
- every frame of the series fetched through the portal's `/dicom-web/` proxy and straight
  from Orthanc, the same requests with the same concurrency, alternating rounds:
  frames/s of both and their ratio;
- the series metadata (what OHIF asks for first) through the proxy: its size on the wire
  (gzip, as browsers ask) and unpacked, and the time to the last byte the first time (the
  archive builds it) and then (median of rounds: the body the portal kept), against
  straight from Orthanc.

`--slices 3000` is a trauma CT's size (`--skip-frames` leaves out the frames comparison,
minutes at that size on a loaded machine; `--skip-browser` the first-image times).

    .venv/bin/python benchmarks/viewer.py [--slices 200] [--visits 5] [--rounds 3]
        [--skip-frames] [--skip-browser]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gzip
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402
from PIL import Image  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from config.settings import load_settings  # noqa: E402
from core.accounts import Role  # noqa: E402
from core.ingest import assess_study  # noqa: E402
from pacs.orthanc_server import start_orthanc, stop_orthanc  # noqa: E402
from pacs.up import make_portal_server  # noqa: E402
from pacs.wsgi import make_app  # noqa: E402
from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from storage.accounts import create_user  # noqa: E402
from storage.archive import ArchiveClient  # noqa: E402
from storage.metadata_cache import MetadataCache, prepare_series_metadata  # noqa: E402
from storage.studies import save_assessment  # noqa: E402
from tests.support.browser import CHROMIUM_ARGS  # noqa: E402
from tests.support.services import make_env  # noqa: E402
from tests.support.studies import demo_study  # noqa: E402
from tests.support.tools import CHROMIUM  # noqa: E402

PASSWORD = "benchmark-passphrase-1"
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
CONCURRENCY = 6  # what a browser opens per host


def make_ct(slices: int) -> list:
    """A CT series of `slices` axial images, cut from the demo CT head's slices."""
    source = [ds for ds in demo_study("CT").datasets if "AXIAL" in list(ds.ImageType)]
    study_uid, series_uid = generate_uid(), generate_uid()
    datasets = []
    for number in range(slices):
        ds = copy.deepcopy(source[number * len(source) // slices])
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.AccessionNumber = "BENCH200"
        ds.SeriesDescription = f"Benchmark {slices} slices"
        ds.InstanceNumber = number + 1
        x, y, _ = (float(value) for value in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, -float(number)]
        ds.SliceLocation = -float(number)
        ds.SliceThickness = 1.0
        datasets.append(ds)
    return datasets


def store(client: ArchiveClient, datasets: list) -> str:
    """STOW the instances, 50 a request; the Orthanc id of their study."""
    for start in range(0, len(datasets), 50):
        files = []
        for ds in datasets[start : start + 50]:
            buffer = BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            files.append(buffer.getvalue())
        client.store_instances(files)
    return client.find_study_ids(datasets[0].StudyInstanceUID)[0]


def measure_metadata(http: requests.Session, url: str, rounds: int) -> tuple[list[float], int, int]:
    """Seconds to the last byte of the series metadata per round, its gzip and unpacked
    sizes."""
    timings, wire, size = [], 0, 0
    for _ in range(rounds):
        started = time.perf_counter()
        with http.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=120) as answer:
            answer.raise_for_status()
            raw = b"".join(answer.raw.stream(65536, decode_content=False))
        timings.append(time.perf_counter() - started)
        wire = len(raw)
        encoded = answer.headers.get("Content-Encoding") == "gzip"
        size = len(gzip.decompress(raw)) if encoded else wire
    return timings, wire, size


def measure_first_image(
    browser, portal_url: str, study_uid: str, visits: int, before_visit=None
) -> list[float]:
    """Seconds from asking for the viewer URL to OHIF's first rendered image, per visit
    (`before_visit(number)` is called before each, off the clock)."""
    context = browser.new_context(base_url=portal_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=email]", "radiologist@bench.example")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    marks: list[float] = []
    page.on(
        "console",
        lambda message: (
            marks.append(time.perf_counter())
            if message.text.startswith("displaySetsToFirstImage")
            else None
        ),
    )
    timings = []
    for number in range(visits):
        page.goto("/worklist")
        if before_visit is not None:
            before_visit(number)
        marks.clear()
        started = time.perf_counter()
        page.goto(f"/viewer/viewer?StudyInstanceUIDs={study_uid}")
        deadline = started + 60
        while not marks:
            if time.perf_counter() > deadline:
                raise SystemExit("the viewer showed no image within 60 s")
            page.wait_for_timeout(20)
        timings.append(marks[0] - started)
        png = page.locator("canvas.cornerstone-canvas").first.screenshot()
        if np.asarray(Image.open(BytesIO(png)).convert("L"), dtype=np.float32).var() < 100:
            raise SystemExit("OHIF reported a first image but the viewport is blank")
    context.close()
    return timings


def measure_viewer(settings, portal_url: str, datasets: list, visits: int) -> None:
    """First-image times in headless Chromium: the first visit; a study opened for the first
    time with the browser's cache warm, its series metadata prepared as the pipeline does at
    ingestion or (the baseline, alternating) built by the archive when opened; then `visits`
    more of the same study."""
    from playwright.sync_api import sync_playwright

    study_uid, series_uid = datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID
    series = f"{study_uid}/{series_uid}"
    cache = MetadataCache(settings.metadata_cache_dir)
    prepared: list[float] = []

    def open_as_new(number: int) -> None:
        """Forget what the portal kept of the series; on even visits, prepare it as the
        ingestion does (for the viewer the first visit recorded)."""
        cache.forget(series)
        if number % 2 == 0:
            started = time.perf_counter()
            with ArchiveClient.from_settings(settings) as client:
                written = prepare_series_metadata(
                    client, cache, study_uid, series_uid, len(datasets)
                )
            prepared.append(time.perf_counter() - started)
            if written != 1:
                raise SystemExit(f"the preparation kept {written} bodies, not 1")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        cold = measure_first_image(browser, portal_url, study_uid, 1)[0]
        new = measure_first_image(browser, portal_url, study_uid, 2 * visits + 1, open_as_new)
        warm = measure_first_image(browser, portal_url, study_uid, visits + 1)[1:]
        browser.close()
    ready, built = new[2::2], new[1::2]  # the first loads the browser's cache
    print(f"  first image, first visit (empty browser cache): {cold:.2f} s")
    print("  first image, a study opened for the first time (browser cache warm):")
    print(
        f"    metadata prepared at ingestion: median {statistics.median(ready):.2f} s, "
        f"max {max(ready):.2f} s over {len(ready)} (goal <= 1.5 s)"
    )
    print(
        f"    metadata built when opened (baseline, same run): median "
        f"{statistics.median(built):.2f} s, max {max(built):.2f} s over {len(built)}"
    )
    print(
        f"    the preparation at ingestion (off the radiologist's clock): median "
        f"{statistics.median(prepared):.2f} s for {len(datasets)} instances"
    )
    print(
        f"  first image, later visits: median {statistics.median(warm):.2f} s, "
        f"max {max(warm):.2f} s over {len(warm)} (goal <= 1.5 s)"
    )


def serve_portal(settings) -> None:
    """The portal as `pacs up` serves it (its app and waitress server), until terminated."""
    make_portal_server(make_app(settings), settings).run()


def wait_for_portal(portal_url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{portal_url}/api/v1/openapi.json", timeout=2).raise_for_status()
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise SystemExit("the portal did not start within 30 s") from None
            time.sleep(0.1)


def sign_in(portal_url: str) -> requests.Session:
    """A session signed in through the login form: the viewer's requests carry its cookie."""
    http = requests.Session()
    form = http.get(f"{portal_url}/login", timeout=10).text
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
    answer = http.post(
        f"{portal_url}/login",
        data={"email": "radiologist@bench.example", "password": PASSWORD, "csrf_token": csrf},
        timeout=10,
    )
    answer.raise_for_status()
    return http


def list_frame_urls(root: str, study_uid: str, metadata: list[dict]) -> list[str]:
    urls = []
    for instance in metadata:
        series_uid = instance["0020000E"]["Value"][0]
        sop_uid = instance["00080018"]["Value"][0]
        urls.append(f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/1")
    return urls


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU time of the process and its threads, in seconds."""
    times = process.cpu_times()
    return times.user + times.system


def fetch_frames(http: requests.Session, urls: list[str]) -> tuple[float, int]:
    """Seconds to fetch every frame with CONCURRENCY parallel requests, and bytes read."""

    def fetch(url: str) -> int:
        answer = http.get(url, headers={"Accept": FRAME_ACCEPT}, timeout=60)
        answer.raise_for_status()
        return len(answer.content)

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        size = sum(pool.map(fetch, urls))
    return time.perf_counter() - started, size


def compare_frames(
    settings, portal_url, proxy, direct, study_uid, series_uid, args, portal_pid, orthanc_pid
) -> None:
    """Every frame of the series through the proxy and straight from Orthanc: frames/s, and
    the CPU time each process (the portal, Orthanc, this client) spends on a frame (on two
    cores, what the portal spends is taken from the others)."""
    for http in (proxy, direct):
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=CONCURRENCY)
        http.mount("http://", adapter)
    metadata = direct.get(
        f"{settings.orthanc_url}/dicom-web/studies/{study_uid}/series/{series_uid}/metadata",
        timeout=300,
    ).json()
    through = list_frame_urls(f"{portal_url}/dicom-web", study_uid, metadata)
    straight = list_frame_urls(f"{settings.orthanc_url}/dicom-web", study_uid, metadata)
    fetch_frames(direct, straight)  # warm Orthanc's cache and both connection pools
    fetch_frames(proxy, through)
    proxied, plain = [], []
    processes = {"portal": psutil.Process(portal_pid), "Orthanc": psutil.Process(orthanc_pid)}
    processes["client"] = psutil.Process()
    cpu = {(path, name): 0.0 for path in ("direct", "proxy") for name in processes}
    for _ in range(args.rounds):
        for path, http, urls, times in (
            ("direct", direct, straight, plain),
            ("proxy", proxy, through, proxied),
        ):
            before = {name: cpu_seconds(process) for name, process in processes.items()}
            times.append(fetch_frames(http, urls)[0])
            for name, process in processes.items():
                cpu[path, name] += cpu_seconds(process) - before[name]
    frames = len(through)
    size = fetch_frames(direct, straight)[1]
    proxy_rate = frames / statistics.median(proxied)
    direct_rate = frames / statistics.median(plain)
    print(
        f"  frames ({frames} x {size / frames / 1024:.0f} KiB, "
        f"{CONCURRENCY} at a time, median of {args.rounds} rounds):"
    )
    print(f"    straight from Orthanc: {direct_rate:7.0f} frames/s")
    print(f"    through the proxy:     {proxy_rate:7.0f} frames/s")
    print(f"    ratio proxy/direct:    {proxy_rate / direct_rate:7.2f} (goal >= 0.8)")
    for path in ("direct", "proxy"):
        shares = ", ".join(
            f"{name} {cpu[path, name] * 1000 / (frames * args.rounds):.2f}" for name in processes
        )
        print(f"    CPU ms a frame, {path}: {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--visits", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--skip-frames", action="store_true", help="no frames comparison (long at 3,000 slices)"
    )
    parser.add_argument("--skip-browser", action="store_true", help="no first-image times")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pacs-viewer-bench-") as home:
        settings = load_settings(make_env(Path(home)))
        orthanc = start_orthanc(settings)
        server = None
        try:
            app = create_app({"PACS_SETTINGS": settings})
            with ArchiveClient.from_settings(settings) as client, app.app_context():
                datasets = make_ct(args.slices)
                study_uid = datasets[0].StudyInstanceUID
                orthanc_id = store(client, datasets)
                save_assessment(
                    db.session,
                    assess_study(client.get_archived_study(orthanc_id)),
                    datetime.datetime.now(datetime.UTC),
                )
                create_user(
                    db.session,
                    "radiologist@bench.example",
                    PASSWORD,
                    Role.RADIOLOGIST,
                    datetime.datetime.now(datetime.UTC),
                )
                db.session.commit()
            # A process of its own, as in `pacs up`: in this one its threads would share
            # the interpreter lock with the benchmark's client threads.
            server = multiprocessing.get_context("fork").Process(
                target=serve_portal, args=(settings,), daemon=True
            )
            server.start()
            portal_url = f"http://127.0.0.1:{settings.portal_port}"
            wait_for_portal(portal_url)
            print(f"viewer benchmark: a {args.slices}-slice CT, portal served by waitress")

            if not args.skip_browser:
                measure_viewer(settings, portal_url, datasets, args.visits)

            proxy = sign_in(portal_url)
            direct = requests.Session()
            direct.auth = (settings.orthanc_user, settings.orthanc_password)
            series_uid = datasets[0].SeriesInstanceUID
            if not args.skip_frames:
                compare_frames(
                    settings,
                    portal_url,
                    proxy,
                    direct,
                    study_uid,
                    series_uid,
                    args,
                    server.pid,
                    orthanc.pid,
                )
            path = f"/dicom-web/studies/{study_uid}/series/{series_uid}/metadata"
            # Another Accept than the viewer's: a body the portal has not kept yet.
            proxy.headers["Accept"] = "application/dicom+json, application/json"
            timings, wire, size = measure_metadata(proxy, f"{portal_url}{path}", args.rounds + 1)
            direct_seconds = measure_metadata(direct, f"{settings.orthanc_url}{path}", 1)[0][0]
            print(
                f"  series metadata through the proxy ({args.slices} instances): "
                f"{wire / 1024:.0f} KiB on the wire, {size / 1024:.0f} KiB unpacked; to the last "
                f"byte: first {timings[0]:.2f} s (from the archive), then median "
                f"{statistics.median(timings[1:]):.3f} s (kept by the portal); straight from "
                f"Orthanc {direct_seconds:.2f} s"
            )
            print(f"  load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        finally:
            if server is not None:
                server.terminate()
                server.join(timeout=10)
            stop_orthanc(settings)
            orthanc.wait(timeout=30)


if __name__ == "__main__":
    main()
