"""C-STORE rate into the project's Orthanc, with and without TCP_NODELAY on the client.

Starts its own Orthanc (temporary PACS_HOME, free loopback ports) from the project's
template, sends fresh instances (new UIDs each run, so Orthanc stores every one) with
pynetdicom and with dcmtk's storescu, and prints instances/s for each; the ratio is
against the same client without TCP_NODELAY, measured in the same run.

    .venv/bin/python benchmarks/cstore.py [--instances 500] [--slow-instances 50]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import pydicom  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from config.settings import Settings, load_settings  # noqa: E402
from pacs.orthanc_server import start_orthanc, stop_orthanc  # noqa: E402
from storage.dicom_sender import send_datasets  # noqa: E402
from tests.support.services import find_free_port  # noqa: E402
from tests.support.studies import register_test_callers, run_storescu  # noqa: E402


def make_datasets(count: int) -> list[pydicom.Dataset]:
    """`count` copies of pydicom's CT test file (128x128), each with its own UIDs."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study_uid, series_uid = generate_uid(), generate_uid()
    datasets = []
    for number in range(1, count + 1):
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = number
        datasets.append(ds)
    return datasets


def time_pynetdicom(settings: Settings, count: int, *, nodelay: bool) -> float:
    datasets = make_datasets(count)
    started = time.perf_counter()
    summary = send_datasets(
        datasets,
        host="127.0.0.1",
        port=settings.orthanc_dicom_port,
        called_aet=settings.orthanc_aet,
        tcp_nodelay=nodelay,
    )
    elapsed = time.perf_counter() - started
    assert summary.sent == count and not summary.failed, summary
    return count / elapsed


def time_storescu(settings: Settings, count: int, folder: Path, *, nodelay: bool) -> float:
    target = folder / f"storescu-{nodelay}"
    target.mkdir()
    for index, ds in enumerate(make_datasets(count)):
        ds.save_as(target / f"{index:05d}.dcm", enforce_file_format=True)
    started = time.perf_counter()
    run_storescu(settings, [target], nodelay=nodelay)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500, help="instances per fast run")
    parser.add_argument(
        "--slow-instances", type=int, default=50, help="instances per run without TCP_NODELAY"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        env = {
            "PACS_HOME": tmp,
            "PACS_ORTHANC_HTTP_PORT": str(find_free_port()),
            "PACS_ORTHANC_DICOM_PORT": str(find_free_port()),
        }
        settings = load_settings(env)
        register_test_callers(settings)  # the archive accepts registered AEs only
        process = start_orthanc(settings)
        try:
            time_pynetdicom(settings, 20, nodelay=True)  # warm-up: association, caches
            rows = [
                (
                    "pynetdicom",
                    "on",
                    args.instances,
                    time_pynetdicom(settings, args.instances, nodelay=True),
                ),
                (
                    "pynetdicom",
                    "off",
                    args.slow_instances,
                    time_pynetdicom(settings, args.slow_instances, nodelay=False),
                ),
            ]
            if shutil.which("storescu"):
                rows += [
                    (
                        "storescu",
                        "on",
                        args.instances,
                        time_storescu(settings, args.instances, Path(tmp), nodelay=True),
                    ),
                    (
                        "storescu",
                        "off",
                        args.slow_instances,
                        time_storescu(settings, args.slow_instances, Path(tmp), nodelay=False),
                    ),
                ]
        finally:
            stop_orthanc(settings)
            process.wait()
    baseline = {client: rate for client, nodelay, _, rate in rows if nodelay == "off"}
    print(f"{'client':<12}{'TCP_NODELAY':<13}{'instances':>10}{'inst/s':>10}{'vs off':>9}")
    for client, nodelay, count, rate in rows:
        print(f"{client:<12}{nodelay:<13}{count:>10}{rate:>10.1f}{rate / baseline[client]:>8.1f}x")


if __name__ == "__main__":
    main()
