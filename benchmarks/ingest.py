"""Ingestion throughput and latency, end to end on one machine.

Starts its own Orthanc (temporary PACS_HOME, free loopback ports, StableAge 2 s),
a Prefect server (in-memory database), and the portal's webhook with the embedded
pipeline, exactly as `pacs up` wires them. Sends N studies of M instances with
dcmtk's storescu (TCP_NODELAY) and prints, for the same run:

- the archive's receive rate (instances/s while storescu sends),
- the pipeline's processing rate (instances/s inside `ingest_study` runs), with the viewer's
  series metadata prepared beside them as at a site whose radiologists use the viewer,
- the time from a study's stable notification to its worklist row (p50, p95),
- the pipeline's capacity once the archive is quiet: the same studies ingested
  again into a fresh database (recorded studies are not read again), one flow run per
  study and then all in one `ingest_studies` run,
- big studies (`--instances 3000`: CT in series of 300, sent series after series, one
  association each, as scanners do): the time from a study's first complete series (its
  StableSeries notification) to its "arriving" worklist row, from its last instance to its
  complete row (the stable age included), where the first arriving row's time went, and
  the pipeline's peak memory ingesting one study whole (tracemalloc, Python allocations, in
  a run of its own).

With --scaled-out, the same measures through the engine, as `pacs portal`, `pacs engine
up` and `pacs worker` run them (PostgreSQL, Orthanc on its PostgreSQL index): studies
notified to the gunicorn portal are queued in the database and ingested by the workers;
stable -> worklist p50/p95 with one worker, then the processing rate (archive quiet,
every study queued again) with one worker and with two, in the same run.

    .venv/bin/python benchmarks/ingest.py [--studies 20] [--instances 100] [--scaled-out]
    .venv/bin/python benchmarks/ingest.py --instances 3000      # 2 studies unless --studies
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.big_studies import BigStudy  # noqa: E402
from tests.support.services import make_env, start_prefect_server  # noqa: E402
from tests.support.studies import (  # noqa: E402
    clone_study,
    register_test_callers,
    run_storescu,
    write_files,
)

LATENCY_LINE = re.compile(r"consumer: study (\S+) done ([0-9.]+) s after it was queued")


class TimedPipeline:
    """The embedded pipeline, noting when each notification arrived."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.notified: dict[str, float] = {}  # the first notification (StableSeries, arriving)
        self.latest: dict[str, float] = {}  # the last one (StableStudy, complete)

    def submit(self, orthanc_study_id: str) -> None:
        self.notified.setdefault(orthanc_study_id, time.time())
        self.latest[orthanc_study_id] = time.time()
        self.pipeline.submit(orthanc_study_id)


class StageClock:
    """Adds up the time spent in one function, to split a flow run's time by stage, and
    notes when each call for a study (its first argument after `self`/`settings`) started
    and ended, to split the first arriving row's latency."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls: dict[str, list[tuple[float, float]]] = {}

    def wrap(self, function):
        def timed(first, second, *args, **kwargs):
            started = time.perf_counter()
            wall = time.time()
            try:
                return function(first, second, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                key = second if isinstance(second, str) else getattr(second, "orthanc_id", "")
                self.calls.setdefault(key, []).append((wall, time.time()))

        return timed


class RowWatcher:
    """Polls the worklist every 50 ms: when each study was first seen arriving, and complete."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.arriving: dict[str, float] = {}
        self.complete: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        from sqlalchemy import select

        from storage.database import open_session
        from storage.models.arrivals import StudyArrival
        from storage.models.studies import Study

        while not self.stopping.wait(0.05):
            with open_session(self.database_url) as session:
                rows = session.execute(
                    select(Study.study_instance_uid, StudyArrival.study_id).outerjoin(
                        StudyArrival, StudyArrival.study_id == Study.id
                    )
                ).all()
            now = time.time()
            for uid, arrival in rows:
                target = self.arriving if arrival is not None else self.complete
                target.setdefault(uid, now)


def describe(values: list[float]) -> str:
    if not values:
        return "none seen"
    return (
        f"p50 {statistics.median(values):.3f} s, p95 {percentile(values, 0.95):.3f} s, "
        f"max {max(values):.3f} s (n={len(values)})"
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, help="default 20, or 2 beyond 300 instances")
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--scaled-out", action="store_true", help="through the engine")
    args = parser.parse_args()
    args.studies = args.studies or (20 if args.instances <= 300 else 2)
    if args.scaled_out:
        run_scaled_out(args.studies, args.instances)
        return

    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        home = Path(tmp)
        env = make_env(home / "pacs", PACS_ORTHANC_STABLE_AGE="2")
        os.environ.update(env)
        os.environ.update(
            DO_NOT_TRACK="1",
            PREFECT_LOGGING_TO_API_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        prefect_server, api_url = start_prefect_server(home / "prefect")
        os.environ["PREFECT_API_URL"] = api_url

        from sqlalchemy import select
        from werkzeug.serving import make_server

        import storage.metadata_cache
        import tasks.database
        from config.settings import load_settings
        from pacs.orthanc_server import start_orthanc, stop_orthanc
        from pacs.pipeline import EmbeddedPipeline
        from portal import create_app
        from portal.viewer.proxy import forwarded_header
        from storage.archive import ArchiveClient
        from storage.database import open_session
        from storage.metadata_cache import MetadataCache, get_preparer
        from storage.models.studies import Study

        fetch_clock, record_clock, glimpse_clock = StageClock(), StageClock(), StageClock()
        prepare_clock = StageClock()
        ArchiveClient.get_archived_study = fetch_clock.wrap(ArchiveClient.get_archived_study)
        ArchiveClient.get_study_glimpse = glimpse_clock.wrap(ArchiveClient.get_study_glimpse)
        tasks.database.record_study = record_clock.wrap(tasks.database.record_study)
        storage.metadata_cache.prepare_series_metadata = prepare_clock.wrap(
            storage.metadata_cache.prepare_series_metadata
        )

        settings = load_settings(env)
        # A site whose radiologists use the viewer: the pipeline prepares each new series'
        # metadata for it after recording the study (storage/metadata_cache.py).
        MetadataCache(settings.metadata_cache_dir).remember_viewer(
            forwarded_header(f"127.0.0.1:{settings.portal_port}", "http"),
            "application/dicom+json",
        )
        register_test_callers(settings)  # storescu: the archive accepts registered AEs only
        orthanc = start_orthanc(settings)
        pipeline = EmbeddedPipeline(reconcile_every=3600)
        timed = TimedPipeline(pipeline)
        app = create_app({"PACS_SETTINGS": settings, "PACS_PIPELINE": timed})
        server = make_server("127.0.0.1", settings.portal_port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            pipeline.start()
            watcher = RowWatcher(settings.database_url)
            watcher.thread.start()
            studies = [BigStudy(args.instances) for _ in range(args.studies)]
            folders = [
                [
                    study.write(home / f"study{i}" / f"series{j}", range(j, j + 1))
                    for j in range(len(study.series_uids))
                ]
                for i, study in enumerate(studies)
            ]
            # Warm-up: the first flow run pays for imports and connections.
            time.sleep(1)
            started = time.perf_counter()
            sent: dict[str, float] = {}  # study UID -> when its last instance was stored
            for study, series_folders in zip(studies, folders, strict=True):
                for folder in series_folders:
                    run_storescu(settings, [folder])
                sent[study.study_instance_uid] = time.time()
            send_seconds = time.perf_counter() - started
            total = args.studies * args.instances

            deadline = time.monotonic() + 120 + args.studies * 5
            rows: list[Study] = []
            while time.monotonic() < deadline:
                with open_session(settings.database_url) as session:
                    rows = list(session.scalars(select(Study)))
                if len(rows) >= args.studies:
                    break
                time.sleep(0.2)
            complete_by = time.monotonic() + 60
            while len(watcher.complete) < args.studies and time.monotonic() < complete_by:
                time.sleep(0.2)
            with open_session(settings.database_url) as session:
                rows = list(session.scalars(select(Study)))  # as completed
            watcher.stopping.set()
            pipeline.stop()
            live_fetch, live_record = fetch_clock.seconds, record_clock.seconds
            get_preparer(settings).wait(600)  # the series the live runs queued
            live_prepare = prepare_clock.seconds
            live_prepared = sum(len(calls) for calls in prepare_clock.calls.values())
            ids = [row.orthanc_id for row in rows]
            from flows.ingest_study import ingest_studies, ingest_study
            from pacs.engine import engine_settings
            from tests.support.databases import new_database

            def fresh_database(name: str) -> None:
                """Studies already recorded are not read again: time reading them whole."""
                os.environ["PACS_DATABASE_URL"] = new_database(home / f"{name}.sqlite3")

            with engine_settings(None):
                fresh_database("single")
                started = time.perf_counter()
                for orthanc_id in ids:
                    ingest_study(orthanc_id)
                single_seconds = time.perf_counter() - started
                fresh_database("batch")
                started = time.perf_counter()
                ingest_studies(ids)  # the viewer's metadata kept already: not prepared again
                batch_seconds = time.perf_counter() - started
                fresh_database("prepared")
                for kept in settings.metadata_cache_dir.glob("*.json.gz"):
                    kept.unlink()  # the viewer's metadata of every series: prepared again
                started = time.perf_counter()
                ingest_studies(ids)
                if not get_preparer(settings).wait(600):
                    raise SystemExit("the viewer's metadata was not prepared within 10 minutes")
                prepared_seconds = time.perf_counter() - started
                fresh_database("memory")
                tracemalloc.start()
                ingest_study(ids[0])
                peak_bytes = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                with ArchiveClient.from_settings(settings) as client:
                    tracemalloc.start()
                    every_tag = client.get_study_instances_tags(ids[0])
                    baseline_bytes = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
                    del every_tag
                started = time.perf_counter()
                ingest_study(ids[0])  # recorded already: nothing new to read
                noop_seconds = time.perf_counter() - started
        finally:
            pipeline.stop()
            server.shutdown()
            stop_orthanc(settings)
            orthanc.wait()
            prefect_server.terminate()
            prefect_server.wait()

    latencies = [
        row.ingested_at.timestamp() - timed.latest[row.orthanc_id]
        for row in rows
        if row.orthanc_id in timed.latest
    ]
    runs = pipeline.run_seconds
    processed = sum(instances for _, instances in runs)
    busy = sum(seconds for seconds, _ in runs)
    print(
        f"studies x instances       {args.studies} x {args.instances} ({len(rows)} on the worklist)"
    )
    print(f"archive receive rate      {total / send_seconds:8.1f} instances/s (storescu)")
    print(
        f"pipeline processing rate  {processed / busy:8.1f} instances/s "
        f"({len(runs)} flow runs, {busy:.2f} s busy)"
    )
    print(f"  ratio to receive rate   {processed / busy / (total / send_seconds):8.2f}x")
    print(
        f"  beside the flow runs    the viewer's metadata prepared in {live_prepare:.2f} s "
        f"({live_prepared} series)"
    )
    print(
        f"  of the busy time        archive fetch {live_fetch:.2f} s, "
        f"validate+record {live_record:.2f} s, "
        f"Prefect and the rest {busy - live_fetch - live_record:.2f} s"
    )
    print(
        f"capacity, archive quiet   {total / single_seconds:8.1f} instances/s one run per study, "
        f"{total / batch_seconds:.1f} in one batch run"
    )
    print(
        f"  ratio to receive rate   {total / single_seconds / (total / send_seconds):8.2f}x, "
        f"{total / batch_seconds / (total / send_seconds):.2f}x"
    )
    print(
        f"  one batch run and the viewer's metadata prepared (to the last series) "
        f"{total / prepared_seconds:.1f} instances/s "
        f"({total / prepared_seconds / (total / send_seconds):.2f}x)"
    )
    if latencies:
        print(
            f"stable -> worklist        p50 {statistics.median(latencies):.3f} s, "
            f"p95 {percentile(latencies, 0.95):.3f} s, max {max(latencies):.3f} s"
        )
    orthanc_ids = {row.study_instance_uid: row.orthanc_id for row in rows}
    first_series = [
        watcher.arriving[uid] - timed.notified[orthanc_ids[uid]]
        for uid in watcher.arriving
        if orthanc_ids.get(uid) in timed.notified
    ]
    last_instance = [watcher.complete[uid] - sent[uid] for uid in sent if uid in watcher.complete]
    print(
        f"first series -> arriving  {describe(first_series)}  "
        f"(from its StableSeries notification; goal <= 1 s)"
    )
    for uid in watcher.arriving:
        orthanc_id = orthanc_ids.get(uid)
        if orthanc_id not in timed.notified or orthanc_id not in fetch_clock.calls:
            continue
        notified = timed.notified[orthanc_id]
        # The first read after the notification: one instance (the glimpse), or the series.
        read = min([*glimpse_clock.calls.get(orthanc_id, []), fetch_clock.calls[orthanc_id][0]])
        kind = "glimpse" if read in glimpse_clock.calls.get(orthanc_id, []) else "series read"
        recorded = next(c for c in record_clock.calls[orthanc_id] if c[0] >= read[1])
        print(
            f"  split                   to the first read {read[0] - notified:.3f} s (queue, "
            f"flow run start), {kind} {read[1] - read[0]:.3f} s, to the record "
            f"{recorded[0] - read[1]:.3f} s, record {recorded[1] - recorded[0]:.3f} s, "
            f"to the row seen {watcher.arriving[uid] - recorded[1]:.3f} s"
        )
    print(f"last instance -> complete {describe(last_instance)}  (stable age 2 s included)")
    print(
        f"pipeline peak memory      {peak_bytes / 2**20:.1f} MiB of Python allocations "
        f"ingesting one {args.instances}-instance study whole (tracemalloc)"
    )
    print(
        f"  baseline                {baseline_bytes / 2**20:.1f} MiB holding its instances' "
        f"every tag, as ingestion did ({baseline_bytes / peak_bytes:.1f}x)"
    )
    print(f"run with nothing new      {noop_seconds:.3f} s (a study recorded already)")
    print(f"load average              {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"date                      {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")


def make_study_folders(home: Path, studies: int, instances: int) -> list[Path]:
    """`studies` studies of `instances` single-frame CT instances each, as files."""
    folders = []
    for index in range(studies):
        datasets = clone_study("CT", limit=1)
        template = datasets[0]
        for number in range(1, instances):
            clone = clone_study("CT", limit=1)[0]
            clone.StudyInstanceUID = template.StudyInstanceUID
            clone.SeriesInstanceUID = template.SeriesInstanceUID
            clone.InstanceNumber = number + 1
            datasets.append(clone)
        folders.append(home / f"study{index}")
        write_files(datasets, folders[-1])
    return folders


def run_scaled_out(studies: int, instances: int) -> None:
    from sqlalchemy import func, select

    from storage.database import open_session
    from storage.models.studies import Study
    from storage.pipeline_queue import QueueDispatcher, count_queued
    from tests.support import postgres
    from tests.support.platform import Platform
    from tests.support.services import run_pacs

    total = studies * instances
    database = postgres.start_postgres("pacs", "orthanc", "prefect")
    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        home = Path(tmp)
        (home / "pacs").mkdir()
        platform = Platform(home / "pacs", database)
        try:
            folders = make_study_folders(home, studies, instances)
            upgraded = run_pacs(platform.env, "db", "upgrade")  # compose's `migrate` service
            assert upgraded.returncode == 0, upgraded.stderr
            assert platform.start_orthanc().returncode == 0
            platform.start("engine", "engine", "up")
            platform.wait_for_line("engine", "Prefect server ready", timeout=600)
            platform.start("portal", "portal")
            platform.start("worker-1", "worker")
            platform.wait_for_line("worker-1", "pacs: worker", timeout=300)
            time.sleep(5)  # the worker's first poll and imports

            started = time.perf_counter()
            run_storescu(platform.settings, folders)
            send_seconds = time.perf_counter() - started

            def listed() -> int:
                with open_session(platform.settings.database_url) as session:
                    return session.scalar(select(func.count()).select_from(Study)) or 0

            wait_until(lambda: listed() >= studies, 300 + studies * 10)
            latencies = [float(m[1]) for m in LATENCY_LINE.findall(platform.log("worker-1"))]

            with open_session(platform.settings.database_url) as session:
                ids = list(session.scalars(select(Study.orthanc_id)))
            dispatcher = QueueDispatcher(platform.settings.database_url)

            def drain_seconds() -> float:
                """Queue every study again (the archive quiet) and time the queue emptying."""
                started = time.perf_counter()
                for orthanc_id in ids:
                    dispatcher.submit(orthanc_id)

                def empty() -> bool:
                    with open_session(platform.settings.database_url) as session:
                        return not count_queued(session)

                wait_until(empty, 300 + studies * 10)
                return time.perf_counter() - started

            one_worker = drain_seconds()
            platform.start("worker-2", "worker")
            platform.wait_for_line("worker-2", "pacs: worker", timeout=300)
            time.sleep(5)
            two_workers = drain_seconds()
        finally:
            platform.stop_all()
            database.stop()

    receive = total / send_seconds
    print(f"studies x instances       {studies} x {instances} ({len(ids)} on the worklist)")
    print(f"archive receive rate      {receive:8.1f} instances/s (storescu)")
    if latencies:
        print(
            f"stable -> worklist        p50 {statistics.median(latencies):.3f} s, "
            f"p95 {percentile(latencies, 0.95):.3f} s, max {max(latencies):.3f} s "
            f"(queued by the portal -> done by the worker, one worker, {len(latencies)} studies)"
        )
    for label, seconds in (("one worker", one_worker), ("two workers", two_workers)):
        print(
            f"processing, {label:<12}  {total / seconds:8.1f} instances/s "
            f"({seconds:.1f} s for every study again), {total / seconds / receive:.2f}x receive"
        )
    print(f"load average              {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"date                      {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the platform did not finish in time")
        time.sleep(0.2)


if __name__ == "__main__":
    main()
