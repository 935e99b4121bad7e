"""`pacs import` of a folder against plain `storescu` (TCP_NODELAY) on the same files.

Writes N instances (fresh copies of the demo CT, MR and CR studies, new UIDs) into a
temporary folder, then, each into a fresh Orthanc started from the project's template
(temporary PACS_HOME, free loopback ports):

- imports the folder as `pacs import` does (walk, read, classify, parallel REST uploads),
- sends the same files with dcmtk's storescu (TCP_NODELAY=1), as a modality would,

and prints instances/s and MB/s for both and the ratio. `--transports` also measures
the ways of sending that the importer chose between: REST `POST /instances` with 1-8
parallel requests and STOW-RS batches, on the same files.

    .venv/bin/python benchmarks/import.py [--instances 2000] [--workers 4] [--transports]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from config.settings import Settings, load_settings  # noqa: E402
from core.import_rules import Outcome, prepare_instance  # noqa: E402
from pacs.orthanc_server import start_orthanc, stop_orthanc  # noqa: E402
from storage.archive import ArchiveClient  # noqa: E402
from storage.import_sender import DEFAULT_WORKERS, import_paths  # noqa: E402
from tests.support.services import find_free_port  # noqa: E402
from tests.support.studies import (  # noqa: E402
    clone_study,
    register_test_callers,
    run_storescu,
    write_files,
)

MODALITIES = ("CT", "MR", "CR")


def write_instances(folder: Path, count: int) -> list[Path]:
    """`count` instances in study folders, cycling through the demo CT, MR and CR studies."""
    paths: list[Path] = []
    index = 0
    while len(paths) < count:
        datasets = clone_study(MODALITIES[index % len(MODALITIES)])[: count - len(paths)]
        paths += write_files(datasets, folder / f"study-{index:03d}")
        index += 1
    return paths


@contextmanager
def fresh_orthanc(parent: Path) -> Iterator[Settings]:
    home = Path(tempfile.mkdtemp(prefix="orthanc-", dir=parent))
    settings = load_settings(
        {
            "PACS_HOME": str(home),
            "PACS_ORTHANC_HTTP_PORT": str(find_free_port()),
            "PACS_ORTHANC_DICOM_PORT": str(find_free_port()),
        }
    )
    register_test_callers(settings)  # storescu: the archive accepts registered AEs only
    process = start_orthanc(settings)
    try:
        yield settings
    finally:
        stop_orthanc(settings)
        process.wait()


def count_instances(settings: Settings) -> int:
    with ArchiveClient.from_settings(settings) as client:
        return client.get_statistics()["CountInstances"]


def time_import(settings: Settings, folder: Path, workers: int) -> float:
    started = time.perf_counter()
    summary = import_paths(
        [(folder, folder.name)],
        lambda: ArchiveClient.from_settings(settings, timeout=300),
        workers=workers,
    )
    elapsed = time.perf_counter() - started
    assert summary.count(Outcome.STORED) == len(summary.files), summary.counts
    return elapsed


def time_storescu(settings: Settings, paths: list[Path]) -> float:
    started = time.perf_counter()
    run_storescu(settings, paths)
    return time.perf_counter() - started


def time_rest(settings: Settings, files: list[bytes], workers: int) -> float:
    return time_parallel(
        settings, files, workers, lambda client, data: client.upload_instance(data)
    )


def time_stow(settings: Settings, files: list[bytes], workers: int, batch: int) -> float:
    batches = [files[i : i + batch] for i in range(0, len(files), batch)]
    return time_parallel(settings, batches, workers, lambda client, b: client.store_instances(b))


def time_parallel(
    settings: Settings, items: list, workers: int, send: Callable[[ArchiveClient, object], object]
) -> float:
    clients = [ArchiveClient.from_settings(settings, timeout=300) for _ in range(workers)]
    chunks = [items[n::workers] for n in range(workers)]

    def run(n: int) -> None:
        for item in chunks[n]:
            send(clients[n], item)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(workers)))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return elapsed


def measure_transports(parent: Path, paths: list[Path]) -> list[tuple[str, float]]:
    """Send only (files read and prepared beforehand): which transport is fastest here."""
    files = [prepare_instance(path.read_bytes()).part10 for path in paths]
    rows = []
    for label, send in [
        *[(f"REST, {w} parallel", lambda s, w=w: time_rest(s, files, w)) for w in (1, 2, 4, 8)],
        *[
            (f"STOW, {w} x {b} per request", lambda s, w=w, b=b: time_stow(s, files, w, b))
            for w, b in ((1, 50), (2, 25), (4, 25), (4, 10))
        ],
    ]:
        with fresh_orthanc(parent) as settings:
            elapsed = send(settings)
            assert count_instances(settings) == len(files)
        rows.append((label, len(files) / elapsed))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="import's uploads")
    parser.add_argument("--transports", action="store_true", help="also REST vs STOW")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacs-bench-import-") as tmp:
        parent = Path(tmp)
        folder = parent / "export"
        paths = write_instances(folder, args.instances)
        megabytes = sum(path.stat().st_size for path in paths) / 1e6
        print(f"{len(paths)} instances, {megabytes:.0f} MB in {folder.name}/", flush=True)
        with fresh_orthanc(parent) as settings:
            imported = time_import(settings, folder, args.workers)
            assert count_instances(settings) == len(paths)
        with fresh_orthanc(parent) as settings:
            stored = time_storescu(settings, paths)
            assert count_instances(settings) == len(paths)
        transports = measure_transports(parent, paths) if args.transports else []
    print(f"{'client':<34}{'seconds':>9}{'inst/s':>9}{'MB/s':>8}{'vs storescu':>13}")
    baseline = len(paths) / stored
    for label, elapsed in (
        (f"pacs import ({args.workers} parallel REST)", imported),
        ("storescu (TCP_NODELAY)", stored),
    ):
        rate = len(paths) / elapsed
        print(
            f"{label:<34}{elapsed:>9.1f}{rate:>9.0f}{megabytes / elapsed:>8.1f}"
            f"{rate / baseline:>12.2f}x"
        )
    if transports:
        print("\nsending only, files prepared beforehand:")
        for label, rate in transports:
            print(f"{label:<34}{rate:>18.0f}{rate * megabytes / len(paths):>8.1f}")


if __name__ == "__main__":
    main()
