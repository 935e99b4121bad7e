"""The embedded pipeline of `pacs up`: the flows run in-process, against the site's engine.

A long-lived thread runs `ingest_study` as soon as a study is notified (the
low-latency path), and `reconcile_archive`, `archive_reports` (the SR outbox),
`escalate_critical_results` (overdue critical results, the webhook outbox) and
`send_results` (the ORU^R01 outbox, when a results host is set) every minute. A run
that fails because the Prefect server does not answer is put back and retried once it
answers again: nothing is dropped.
"""

from __future__ import annotations

import datetime
import logging
import queue
import threading
import time
from typing import Any

from core.changes import describe_withheld_removals
from pacs.engine import engine_settings, is_engine_down, wait_until_healthy
from storage.database import open_session
from storage.pipeline_queue import beat, consumer_name, forget_worker

log = logging.getLogger(__name__)
events = logging.getLogger("pacs.events")  # one line each on `pacs up`'s terminal

MAX_BATCH = 50
REFRESH_QUIET = 1.0  # seconds without a new change before a requested refresh runs
REFRESH_LATEST = 5.0  # ...but no later than this after the first request
BEAT_EVERY = 5.0  # seconds between the pipeline's heartbeats in the database
ENGINE_DOWN = object()  # what run_safely returns when the Prefect server did not answer


class EmbeddedPipeline:
    """One worker thread: queued studies first (a burst in one flow run), a reconciliation
    every `reconcile_every` seconds; and, given `refresh_every`, a second thread that
    refreshes the analytics warehouse that often (a full build must not hold up ingestion)
    and, debounced, soon after a change is announced (`request_refresh`): an ingestion, a
    signature or a status change is on the dashboards within seconds. That thread is the
    warehouse's one writer."""

    def __init__(
        self,
        *,
        reconcile_every: float = 60.0,
        refresh_every: float | None = None,
        engine_url: str | None = None,
        database_url: str | None = None,
    ) -> None:
        self.reconcile_every = reconcile_every
        self.refresh_every = refresh_every
        self.engine_url = engine_url  # None: Prefect's own settings say where
        self.database_url = database_url  # given: heartbeats for `pacs status`
        self.name = consumer_name("embedded")
        self.last_beat = 0.0
        self.stopping = threading.Event()
        self.refresher = threading.Thread(
            target=self.refresh_periodically, name="pacs-warehouse", daemon=True
        )
        self.refresh_wanted = threading.Event()
        self.pending: queue.Queue[str | None] = queue.Queue()
        self.queued: set[str] = set()
        self.lock = threading.Lock()
        self.run_seconds: list[tuple[float, int]] = []  # (duration, instances) per study run
        # Set once the start-up catch-up (reconciliation, outboxes) is done: until then a
        # queued study waits behind every study the archive took while nothing listened.
        self.caught_up = threading.Event()
        self.thread = threading.Thread(target=self.run, name="pacs-pipeline", daemon=True)

    def start(self) -> None:
        self.thread.start()
        if self.refresh_every:
            self.refresher.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.pending.put(None)
        self.stopping.set()
        self.refresh_wanted.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        if self.refresher.is_alive():
            self.refresher.join(timeout)
        if self.database_url:
            with open_session(self.database_url) as session:
                forget_worker(session, self.name)

    def request_refresh(self) -> None:
        """Something the dashboards show changed: refresh the warehouse soon (requests
        arriving together make one refresh)."""
        self.refresh_wanted.set()

    def refresh_periodically(self) -> None:
        """The warehouse now (dashboards need a first build), then every `refresh_every` s
        or soon after a request, whichever comes first."""
        with engine_settings(self.engine_url):
            from flows.refresh_warehouse import refresh_warehouse

            if not self.wait_for_engine(quiet=True):
                return
            while True:
                self.refresh_wanted.clear()
                if self.run_safely(refresh_warehouse) is ENGINE_DOWN and self.wait_for_engine():
                    continue
                if not self.wait_for_request():
                    return
                self.settle_requests()

    def wait_for_request(self) -> bool:
        """Until a refresh is requested or `refresh_every` s have passed: True; False when
        the pipeline is stopping instead."""
        deadline = time.monotonic() + (self.refresh_every or 0)
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.refresh_wanted.wait(min(remaining, 1.0)):
                return True
        return False

    def settle_requests(self) -> None:
        """Wait until requests stop coming for REFRESH_QUIET s (at most REFRESH_LATEST s)."""
        deadline = time.monotonic() + REFRESH_LATEST
        while not self.stopping.is_set() and time.monotonic() < deadline:
            self.refresh_wanted.clear()
            if not self.refresh_wanted.wait(min(REFRESH_QUIET, deadline - time.monotonic())):
                return

    def submit(self, orthanc_study_id: str) -> None:
        """Queue a study once: a notification repeated while it waits adds nothing."""
        with self.lock:
            if orthanc_study_id in self.queued:
                return
            self.queued.add(orthanc_study_id)
        self.pending.put(orthanc_study_id)

    def submit_export(self, export_id: int) -> None:
        """Run an approved research export in a thread of its own (it takes minutes, and
        must not hold up ingestion); its progress and outcome are in the database."""
        threading.Thread(
            target=self.run_export, args=(export_id,), name=f"pacs-export-{export_id}", daemon=True
        ).start()

    def run_export(self, export_id: int) -> None:
        with engine_settings(self.engine_url):
            from flows.export_research import export_research

            if not self.wait_for_engine(quiet=True):
                return
            while self.run_safely(export_research, export_id) is ENGINE_DOWN:
                if not self.wait_for_engine():
                    return

    def run(self) -> None:
        with engine_settings(self.engine_url):
            from flows.archive_reports import archive_reports
            from flows.escalate_critical_results import escalate_critical_results
            from flows.ingest_study import ingest_studies, ingest_study
            from flows.reconcile_archive import reconcile_archive
            from flows.send_results import send_results

            self.beat()
            if not self.wait_for_engine(quiet=True):
                return
            announce_reconciled(self.run_safely(reconcile_archive))
            announce_archived(self.run_safely(archive_reports))
            self.run_safely(escalate_critical_results)
            if sends_results():
                self.run_safely(send_results)
            self.caught_up.set()
            next_reconcile = time.monotonic() + self.reconcile_every
            while True:
                self.beat()
                wait = min(BEAT_EVERY, max(0.0, next_reconcile - time.monotonic()))
                try:
                    item = self.pending.get(timeout=wait)
                except queue.Empty:
                    if time.monotonic() >= next_reconcile:
                        announce_reconciled(self.run_safely(reconcile_archive))
                        announce_archived(self.run_safely(archive_reports))  # the SR outbox
                        self.run_safely(escalate_critical_results)  # overdue, and the webhook
                        if sends_results():
                            self.run_safely(send_results)  # the ORU^R01 outbox
                        next_reconcile = time.monotonic() + self.reconcile_every
                    continue
                if item is None:
                    return
                batch = self.drain([item])
                started = time.perf_counter()
                if len(batch) == 1:
                    outcome = self.run_safely(ingest_study, batch[0])
                else:
                    outcome = self.run_safely(ingest_studies, batch)
                if outcome is ENGINE_DOWN:
                    for orthanc_id in batch:  # put back, in order, before anything newer
                        self.submit(orthanc_id)
                    self.wait_for_engine()
                    continue
                self.request_refresh()
                outcomes = [] if outcome is None else getattr(outcome, "outcomes", [outcome])
                announce_outcomes(outcomes)
                instances = sum(o.instances for o in outcomes)
                self.run_seconds.append((time.perf_counter() - started, instances))

    def wait_for_engine(self, *, quiet: bool = False) -> bool:
        """Until the Prefect server answers (its supervisor restarts it); False when the
        pipeline is stopping instead."""
        if not quiet:
            log.warning("pipeline: the Prefect server does not answer; waiting for it")
        while not self.stopping.is_set():
            if self.engine_url is None or wait_until_healthy(self.engine_url, 5.0):
                return True
            self.beat()
        return False

    def beat(self) -> None:
        """Tell `pacs status` this pipeline is alive (every few seconds at most)."""
        if not self.database_url or time.monotonic() - self.last_beat < BEAT_EVERY:
            return
        try:
            with open_session(self.database_url) as session:
                beat(session, self.name, "embedded", datetime.datetime.now(datetime.UTC))
            self.last_beat = time.monotonic()
        except Exception:
            log.exception("pipeline: cannot record its heartbeat")

    def drain(self, batch: list[str | None]) -> list[str]:
        """Take what else is queued (up to a batch), so a burst costs one flow run."""
        while len(batch) < MAX_BATCH:
            try:
                item = self.pending.get_nowait()
            except queue.Empty:
                break
            if item is None:  # stop after this batch
                self.pending.put(None)
                break
            batch.append(item)
        with self.lock:
            self.queued.difference_update(batch)
        return [item for item in batch if item is not None]

    def run_safely(self, flow: Any, *args: Any) -> Any:
        """A failed run is recorded by Prefect and retried by reconciliation: keep going.
        A run the engine never took (it did not answer) returns ENGINE_DOWN instead."""
        try:
            return flow(*args)
        except Exception as error:
            if self.engine_url is not None and is_engine_down(self.engine_url, error):
                log.warning(
                    "pipeline: %s%r not run: the Prefect server did not answer", flow.name, args
                )
                return ENGINE_DOWN
            log.exception("pipeline: %s%r failed", flow.name, args)
            return None


def announce_outcomes(outcomes: list[Any]) -> None:
    """A line for each study that reached the worklist or quarantine."""
    for outcome in outcomes:
        if outcome.outcome == "ingested":
            events.info(f"study {outcome.study_instance_uid} ingested ({outcome.instances} images)")
        elif outcome.outcome == "quarantined":
            events.warning(
                f"study {outcome.study_instance_uid} quarantined: {', '.join(outcome.findings)}"
            )


def announce_reconciled(summary: Any) -> None:
    """Studies that reached the worklist or quarantine by reconciliation (missed notices)."""
    if summary is None or summary is ENGINE_DOWN:
        return
    counts = {kind: summary.outcomes[kind] for kind in ("ingested", "quarantined")}
    if any(counts.values()):
        events.info(
            f"reconciliation: {counts['ingested']} studies ingested, "
            f"{counts['quarantined']} quarantined"
        )
    if summary.withheld:
        events.warning(f"reconciliation: {describe_withheld_removals(summary.withheld)}")


def announce_archived(outcome: Any) -> None:
    if outcome is not None and outcome is not ENGINE_DOWN and outcome.sent:
        events.info(f"{outcome.sent} signed report(s) archived from the outbox")


def sends_results() -> bool:
    """Only with PACS_HL7_RESULTS_HOST set is there an ORU^R01 outbox to empty (a flow run
    that does nothing still costs Prefect's bookkeeping)."""
    from config.settings import load_settings

    return bool(load_settings().hl7_results_host)
