"""Ingestion throughput and latency, end to end on one machine.

Starts its own Orthanc (temporary PACS_HOME, free loopback ports, StableAge 2 s),
a Prefect server (in-memory database), and the portal's webhook with the embedded
pipeline, exactly as `pacs up` wires them. Sends N studies of M instances with
dcmtk's storescu (TCP_NODELAY) and prints, for the same run:

- the archive's receive rate (instances/s while storescu sends),
- the pipeline's processing rate (instances/s inside `ingest_study` runs),
- the time from a study's stable notification to its worklist row (p50, p95),
- the pipeline's capacity once the archive is quiet: the same studies ingested
  again, one flow run per study and then all in one `ingest_studies` run,
- big studies (`--instances 3000`: CT in series of 300, sent series after series, one
  association each, as scanners do): the time from a study's first complete series (its
  StableSeries notification) to its "arriving" worklist row, from its last instance to its
  complete row (the stable age included), and the pipeline's peak memory ingesting one
  study (tracemalloc, Python allocations, in a run of its own).

    .venv/bin/python benchmarks/ingest.py [--studies 20] [--instances 100]
    .venv/bin/python benchmarks/ingest.py --instances 3000      # 2 studies unless --studies
"""

from __future__ import annotations

import argparse
import datetime
import os
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
from tests.support.studies import register_test_callers, run_storescu  # noqa: E402


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
    """Adds up the time spent in one function, to split a flow run's time by stage."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

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
    args = parser.parse_args()
    args.studies = args.studies or (20 if args.instances <= 300 else 2)

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

        import tasks.database
        from config.settings import load_settings
        from pacs.orthanc_server import start_orthanc, stop_orthanc
        from pacs.pipeline import EmbeddedPipeline
        from portal import create_app
        from storage.archive import ArchiveClient
        from storage.database import open_session
        from storage.models.studies import Study

        fetch_clock, record_clock = StageClock(), StageClock()
        ArchiveClient.get_archived_study = fetch_clock.wrap(ArchiveClient.get_archived_study)
        tasks.database.record_study = record_clock.wrap(tasks.database.record_study)

        settings = load_settings(env)
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
            watcher.stopping.set()
            pipeline.stop()
            live_fetch, live_record = fetch_clock.seconds, record_clock.seconds
            ids = [row.orthanc_id for row in rows]
            from flows.ingest_study import ingest_studies, ingest_study
            from pacs.pipeline import without_heartbeats

            with without_heartbeats():
                started = time.perf_counter()
                for orthanc_id in ids:
                    ingest_study(orthanc_id)
                single_seconds = time.perf_counter() - started
                started = time.perf_counter()
                ingest_studies(ids)
                batch_seconds = time.perf_counter() - started
                tracemalloc.start()
                ingest_study(ids[0])
                peak_bytes = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
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
    print(f"last instance -> complete {describe(last_instance)}  (stable age 2 s included)")
    print(
        f"pipeline peak memory      {peak_bytes / 2**20:.1f} MiB of Python allocations "
        f"ingesting one {args.instances}-instance study (tracemalloc)"
    )
    print(f"load average              {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"date                      {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
