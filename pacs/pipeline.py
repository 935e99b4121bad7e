"""Where stable-study notifications go, and the embedded pipeline that runs the flows.

With a Prefect API configured (`PREFECT_API_URL`), a notification becomes a run
of the `ingest-study` deployment, picked up by the workers. Without one (a single
machine), a long-lived thread in `pacs up` runs `ingest_study` in-process, the
low-latency path, and `reconcile_archive`, `archive_reports` (the SR outbox) and
`send_results` (the ORU^R01 outbox) every minute.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from contextlib import AbstractContextManager
from typing import Any, Protocol

from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

log = logging.getLogger(__name__)

INGEST_DEPLOYMENT = "ingest-study/ingest-study"
EXPORT_DEPLOYMENT = "export-research/export-research"
MAX_BATCH = 50


class IngestDispatcher(Protocol):
    def submit(self, orthanc_study_id: str) -> None: ...

    def submit_export(self, export_id: int) -> None: ...


class DeploymentDispatcher:
    """Hands each study to the `ingest-study` deployment of a Prefect server."""

    def submit(self, orthanc_study_id: str) -> None:
        from prefect.deployments import run_deployment

        run_deployment(
            INGEST_DEPLOYMENT, parameters={"orthanc_study_id": orthanc_study_id}, timeout=0
        )

    def submit_export(self, export_id: int) -> None:
        """An approved research export becomes a run of the `export-research` deployment."""
        from prefect.deployments import run_deployment

        run_deployment(EXPORT_DEPLOYMENT, parameters={"export_id": export_id}, timeout=0)


class EmbeddedPipeline:
    """One worker thread: queued studies first (a burst in one flow run), a reconciliation
    every `reconcile_every` seconds; and, given `refresh_every`, a second thread that
    refreshes the analytics warehouse that often (a full build must not hold up ingestion)."""

    def __init__(
        self, *, reconcile_every: float = 60.0, refresh_every: float | None = None
    ) -> None:
        self.reconcile_every = reconcile_every
        self.refresh_every = refresh_every
        self.stopping = threading.Event()
        self.refresher = threading.Thread(
            target=self.refresh_periodically, name="pacs-warehouse", daemon=True
        )
        self.pending: queue.Queue[str | None] = queue.Queue()
        self.queued: set[str] = set()
        self.lock = threading.Lock()
        self.run_seconds: list[tuple[float, int]] = []  # (duration, instances) per study run
        self.thread = threading.Thread(target=self.run, name="pacs-pipeline", daemon=True)

    def start(self) -> None:
        self.thread.start()
        if self.refresh_every:
            self.refresher.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.pending.put(None)
        self.stopping.set()
        self.thread.join(timeout)
        if self.refresher.is_alive():
            self.refresher.join(timeout)

    def refresh_periodically(self) -> None:
        """The warehouse now (dashboards need a first build), then every `refresh_every` s."""
        with without_heartbeats():
            from flows.refresh_warehouse import refresh_warehouse

            while True:
                self.run_safely(refresh_warehouse)
                if self.stopping.wait(self.refresh_every):
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
        with without_heartbeats():
            from flows.export_research import export_research

            self.run_safely(export_research, export_id)

    def run(self) -> None:
        with without_heartbeats():
            from flows.archive_reports import archive_reports
            from flows.ingest_study import ingest_studies, ingest_study
            from flows.reconcile_archive import reconcile_archive
            from flows.send_results import send_results

            self.run_safely(reconcile_archive)
            self.run_safely(archive_reports)
            if sends_results():
                self.run_safely(send_results)
            next_reconcile = time.monotonic() + self.reconcile_every
            while True:
                try:
                    item = self.pending.get(timeout=max(0.0, next_reconcile - time.monotonic()))
                except queue.Empty:
                    self.run_safely(reconcile_archive)
                    self.run_safely(archive_reports)  # the SR outbox
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
                    instances = outcome.instances if outcome else 0
                else:
                    outcome = self.run_safely(ingest_studies, batch)
                    instances = sum(o.instances for o in outcome.outcomes) if outcome else 0
                self.run_seconds.append((time.perf_counter() - started, instances))

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

    @staticmethod
    def run_safely(flow: Any, *args: Any) -> Any:
        """A failed run is recorded by Prefect and retried by reconciliation: keep going."""
        try:
            return flow(*args)
        except Exception:
            log.exception("pipeline: %s%r failed", flow.name, args)
            return None


def sends_results() -> bool:
    """Only with PACS_HL7_RESULTS_HOST set is there an ORU^R01 outbox to empty (a flow run
    that does nothing still costs Prefect's bookkeeping)."""
    from config.settings import load_settings

    return bool(load_settings().hl7_results_host)


def without_heartbeats() -> AbstractContextManager[Any]:
    """Flow heartbeats cost each synchronous in-process run ~1 s; these runs are watched anyway."""
    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def make_dispatcher() -> IngestDispatcher | None:
    """The deployment dispatcher when a Prefect server is configured, else None."""
    return DeploymentDispatcher() if os.environ.get("PREFECT_API_URL") else None
