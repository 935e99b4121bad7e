"""The queue consumer of each `pacs worker`: the fast path from the portal to the worklist.

The portal queues each notified study as a row (`storage/pipeline_queue.py`). Every
`pacs worker` polls that table five times a second, claims what waits (up to a batch,
for a lease) and runs `ingest_studies` in its own process against the site's Prefect
server: the run is in the UI like any other, without the 3-11 s a deployment run costs
before its flow starts (a process spawned by a polling worker, then imports). Runs are
tagged with the consumer's name so that the runs of a consumer that died are found.

The scheduled flows run here too, each in a thread of its own: reconciliation and the
outboxes every minute, the warehouse every `PACS_WAREHOUSE_REFRESH_EVERY` seconds. One
worker takes each turn (`take_turn`), so each runs once per interval however many workers
there are. A run in this process costs a fraction of a second; as a scheduled deployment,
a new process a run cost about 4 s of CPU (four a minute: a quarter of a core, idle).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

from config.settings import Settings
from pacs.engine import engine_settings, is_engine_down, wait_until_healthy
from pacs.pipeline import ENGINE_DOWN
from storage.database import open_session
from storage.pipeline_queue import (
    EXPORT,
    STUDY,
    Claimed,
    beat,
    claim,
    complete,
    consumer_name,
    end_turn,
    forget_worker,
    give_back,
    take_turn,
)

log = logging.getLogger(__name__)

POLL_EVERY = 0.2  # seconds between looks at an empty queue
BEAT_EVERY = 5.0
STUDY_LEASE = datetime.timedelta(seconds=30)  # a batch takes seconds; a dead consumer's wait
EXPORT_LEASE = datetime.timedelta(hours=2)  # an export takes minutes; retried after this
MAX_ATTEMPTS = 5  # then the row goes: reconciliation still ingests the study
MAX_BATCH = 10  # per claim: a burst spreads over the workers instead of one taking it all
TURN_POLL = 5.0  # seconds between a worker's asks whether a scheduled flow is due
MINUTE = datetime.timedelta(minutes=1)


def consumer_tag(name: str) -> str:
    return f"consumer:{name}"


class QueueConsumer:
    """Claims queued studies and exports and runs their flows, until `stop()`."""

    def __init__(self, settings: Settings, *, kind: str = "worker") -> None:
        self.settings = settings
        self.kind = kind
        self.name = consumer_name(kind)
        self.stopping = threading.Event()
        self.last_beat = 0.0
        self.thread = threading.Thread(target=self.run, name="pacs-consumer", daemon=True)
        self.turns = [
            threading.Thread(
                target=self.run_turns, args=(flow, every), name=f"pacs-{flow.name}", daemon=True
            )
            for flow, every in load_scheduled_flows(settings)
        ]

    def start(self) -> None:
        self.thread.start()
        for thread in self.turns:
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Waits for the runs under way, `timeout` seconds in all."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in [self.thread, *self.turns]:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        with open_session(self.settings.database_url) as session:
            forget_worker(session, self.name)

    def run(self) -> None:
        from prefect import tags

        with engine_settings(self.settings.engine_url), tags(consumer_tag(self.name)):
            from flows.ingest_study import ingest_studies

            while not self.stopping.is_set():
                self.beat()
                self.start_exports()
                claimed = self.claim(STUDY, STUDY_LEASE, MAX_BATCH)
                if not claimed:
                    self.stopping.wait(POLL_EVERY)
                    continue
                outcome = self.run_flow(ingest_studies, [row.key for row in claimed])
                self.settle(claimed, outcome)

    def run_turns(self, flow: Any, every: datetime.timedelta) -> None:
        """Run the scheduled `flow` whenever this worker takes its turn. A turn whose run
        the engine did not take is not given back: the next comes within `every`."""
        from prefect import tags

        with engine_settings(self.settings.engine_url), tags(consumer_tag(self.name)):
            while not self.stopping.wait(TURN_POLL):
                if self.take_turn(flow.name, every):
                    try:
                        self.run_flow(flow)
                    finally:
                        self.end_turn(flow.name)

    def take_turn(self, name: str, every: datetime.timedelta) -> bool:
        try:
            with open_session(self.settings.database_url) as session:
                return take_turn(session, name, every, self.name, now())
        except Exception:
            log.exception("consumer: cannot ask for the turn of %s; asking again", name)
            return False

    def end_turn(self, name: str) -> None:
        """A turn left running (the database did not answer) is free once this consumer's
        heartbeat is a minute old: no worse than a worker that died."""
        try:
            with open_session(self.settings.database_url) as session:
                end_turn(session, name, self.name)
        except Exception:
            log.exception("consumer: cannot end its turn of %s", name)

    def start_exports(self) -> None:
        """An approved export runs in a thread of its own: it must not hold up ingestion."""
        for row in self.claim(EXPORT, EXPORT_LEASE, 1):
            threading.Thread(
                target=self.run_export, args=(row,), name=f"pacs-export-{row.key}", daemon=True
            ).start()

    def run_export(self, row: Claimed) -> None:
        from prefect import tags

        with engine_settings(self.settings.engine_url), tags(consumer_tag(self.name)):
            from flows.export_research import export_research

            self.settle([row], self.run_flow(export_research, int(row.key)))

    def claim(self, kind: str, lease: datetime.timedelta, limit: int) -> list[Claimed]:
        try:
            with open_session(self.settings.database_url) as session:
                return claim(session, self.name, now(), lease=lease, kind=kind, limit=limit)
        except Exception:
            log.exception("consumer: cannot read the queue; trying again")
            self.stopping.wait(1.0)
            return []

    def settle(self, rows: list[Claimed], outcome: Any) -> None:
        """Done rows go; rows of a run the engine never took go back at once; rows of a
        failed run stay claimed until their lease ends, then are retried (a few times)."""
        ids = [row.id for row in rows]
        try:
            with open_session(self.settings.database_url) as session:
                if outcome is ENGINE_DOWN:
                    give_back(session, ids)
                elif outcome is not None:
                    complete(session, ids)
                    log_latency(rows)
                else:
                    complete(session, [row.id for row in rows if row.attempts >= MAX_ATTEMPTS])
        except Exception:
            log.exception("consumer: cannot settle %d queue rows; their lease will", len(ids))
        if outcome is ENGINE_DOWN:
            self.wait_for_engine()

    def run_flow(self, flow: Any, *args: Any) -> Any:
        """The flow's result; None when it failed (recorded by Prefect, retried);
        ENGINE_DOWN when the Prefect server did not answer."""
        try:
            return flow(*args)
        except Exception as error:
            if is_engine_down(self.settings.engine_url, error):
                log.warning("consumer: %s not run: no Prefect server answers", flow.name)
                return ENGINE_DOWN
            log.exception("consumer: %s%r failed", flow.name, args)
            return None

    def wait_for_engine(self) -> None:
        while not self.stopping.is_set():
            if wait_until_healthy(self.settings.engine_url, 5.0):
                return
            self.beat()

    def beat(self) -> None:
        if time.monotonic() - self.last_beat < BEAT_EVERY:
            return
        try:
            with open_session(self.settings.database_url) as session:
                beat(session, self.name, self.kind, now())
            self.last_beat = time.monotonic()
        except Exception:
            log.exception("consumer: cannot record its heartbeat")


def load_scheduled_flows(settings: Settings) -> list[tuple[Any, datetime.timedelta]]:
    """Each scheduled flow (its turns go by its name) and its interval. Imported here, in
    the thread that makes the consumer, not by several threads at once."""
    from flows.archive_reports import archive_reports
    from flows.escalate_critical_results import escalate_critical_results
    from flows.reconcile_archive import reconcile_archive
    from flows.refresh_warehouse import refresh_warehouse
    from flows.send_results import send_results

    scheduled = [
        (reconcile_archive, MINUTE),
        (archive_reports, MINUTE),
        (escalate_critical_results, MINUTE),
        (refresh_warehouse, datetime.timedelta(seconds=settings.warehouse_refresh_every)),
    ]
    if settings.hl7_results_host:  # else there is no ORU^R01 outbox to empty
        scheduled.append((send_results, MINUTE))
    return scheduled


def log_latency(rows: list[Claimed]) -> None:
    """Queued -> done per row: what `benchmarks/ingest.py --scaled-out` reads."""
    done = now()
    for row in rows:
        log.info(
            "consumer: %s %s done %.3f s after it was queued",
            row.kind,
            row.key,
            (done - row.queued_at).total_seconds(),
        )


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
