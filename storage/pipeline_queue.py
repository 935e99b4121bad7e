"""The pipeline's work queue and its workers' heartbeats, in the operational database.

The portal never talks to Prefect: a stable study (or an approved export) becomes a row
here, committed with the request; the pipeline's consumers (`pacs up`'s embedded
pipeline, each `pacs worker`) claim rows for a lease, run the flow, and delete them.
A consumer killed mid-run leaves its rows claimed until the lease ends; then another
takes them, so nothing is lost and nothing waits for a human. Ingestion is an upsert
by study, so a study run twice is still on the worklist once.

The scheduled flows of the scaled-out platform (reconciliation, the outboxes, the
warehouse) run in the workers too: each worker asks every few seconds whether a flow's
turn is due, and one takes it (`take_turn`).
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from storage.database import dialect_insert, open_session
from storage.models.pipeline_queue import FlowSchedule, PipelineWorker, QueuedWork

STUDY = "study"
EXPORT = "export"
DEAD_AFTER = datetime.timedelta(seconds=60)  # without a heartbeat (every 5 s): gone


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    key: str
    attempts: int
    queued_at: datetime.datetime


def consumer_name(kind: str) -> str:
    """Unique per process and machine: `worker@host:pid`."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


def enqueue(session: Session, kind: str, key: str, now: datetime.datetime) -> None:
    """Queue `key` unless it already waits unclaimed (a repeated notification adds nothing)."""
    waiting = session.scalar(
        select(QueuedWork.id).where(
            QueuedWork.kind == kind, QueuedWork.key == key, QueuedWork.claimed_by.is_(None)
        )
    )
    if waiting is None:
        session.add(QueuedWork(kind=kind, key=key, queued_at=now))


def claim(
    session: Session,
    consumer: str,
    now: datetime.datetime,
    *,
    lease: datetime.timedelta,
    kind: str,
    limit: int,
) -> list[Claimed]:
    """Take up to `limit` rows of `kind` nobody holds (or whose lease ran out), oldest first.

    One UPDATE: atomic on SQLite (one writer at a time), and on PostgreSQL the rows are
    picked with SKIP LOCKED so consumers never wait for each other.
    """
    free = (
        select(QueuedWork.id)
        .where(
            QueuedWork.kind == kind,
            or_(QueuedWork.claimed_until.is_(None), QueuedWork.claimed_until < now),
        )
        .order_by(QueuedWork.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        free = free.with_for_update(skip_locked=True)
    until = now + lease
    session.execute(
        update(QueuedWork)
        .where(QueuedWork.id.in_(free.scalar_subquery()))
        .values(claimed_by=consumer, claimed_until=until, attempts=QueuedWork.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(
            QueuedWork.id,
            QueuedWork.kind,
            QueuedWork.key,
            QueuedWork.attempts,
            QueuedWork.queued_at,
        )
        .where(QueuedWork.claimed_by == consumer, QueuedWork.claimed_until == until)
        .order_by(QueuedWork.id)
    ).all()
    return [Claimed(*row) for row in rows]


def complete(session: Session, ids: list[int]) -> None:
    session.execute(delete(QueuedWork).where(QueuedWork.id.in_(ids)))


def give_back(session: Session, ids: list[int]) -> None:
    """Release rows at once (the engine was unreachable): the next claim takes them again."""
    session.execute(
        update(QueuedWork)
        .where(QueuedWork.id.in_(ids))
        .values(claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def count_queued(session: Session) -> dict[str, int]:
    rows = session.execute(select(QueuedWork.kind, func.count()).group_by(QueuedWork.kind))
    return {kind: count for kind, count in rows}


def beat(session: Session, name: str, kind: str, now: datetime.datetime) -> None:
    """Record that consumer `name` is alive."""
    worker = session.get(PipelineWorker, name)
    if worker is None:
        session.add(PipelineWorker(name=name, kind=kind, started_at=now, seen_at=now))
    else:
        worker.seen_at = now


def forget_worker(session: Session, name: str) -> None:
    """A consumer that stops cleanly leaves the list at once."""
    session.execute(delete(PipelineWorker).where(PipelineWorker.name == name))


def live_workers(
    session: Session, now: datetime.datetime, within: datetime.timedelta
) -> list[PipelineWorker]:
    """Consumers seen in the last `within`; older rows are of processes that died."""
    return list(
        session.scalars(
            select(PipelineWorker)
            .where(PipelineWorker.seen_at >= now - within)
            .order_by(PipelineWorker.name)
        )
    )


class IngestDispatcher(Protocol):
    """Where the portal hands a notified study and an approved export."""

    def submit(self, orthanc_study_id: str) -> None: ...

    def submit_export(self, export_id: int) -> None: ...

    def request_refresh(self) -> None:
        """Something the dashboards show changed: refresh the warehouse soon."""


class QueueDispatcher:
    """Where the portal hands studies and approved exports when no pipeline runs in its own
    process (gunicorn, scaled out): rows of the queue, taken by `pacs worker`s."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def submit(self, orthanc_study_id: str) -> None:
        self.put(STUDY, orthanc_study_id)

    def submit_export(self, export_id: int) -> None:
        self.put(EXPORT, str(export_id))

    def request_refresh(self) -> None:
        """Scaled out, the `refresh-warehouse` deployment's schedule keeps the dashboards."""

    def put(self, kind: str, key: str) -> None:
        with open_session(self.database_url) as session:
            enqueue(session, kind, key, datetime.datetime.now(datetime.UTC))


def take_turn(
    session: Session, name: str, every: datetime.timedelta, consumer: str, now: datetime.datetime
) -> bool:
    """True for the one consumer whose turn it is to run the scheduled flow `name`: due, and
    not still running in a consumer that is alive. The same statement moves the due time on
    by `every`, so whoever asks next is refused (on PostgreSQL a second UPDATE waits for the
    first and finds the row no longer due). `end_turn` when the run is over: until then no
    other consumer starts the flow, unless this one stops beating (`DEAD_AFTER`)."""
    session.execute(
        dialect_insert(session)(FlowSchedule)
        .values(name=name, due_at=now)
        .on_conflict_do_nothing(index_elements=[FlowSchedule.name])
    )
    alive = select(PipelineWorker.name).where(PipelineWorker.seen_at >= now - DEAD_AFTER)
    taken = session.execute(
        update(FlowSchedule)
        .where(
            FlowSchedule.name == name,
            FlowSchedule.due_at <= now,
            or_(FlowSchedule.running_since.is_(None), FlowSchedule.taken_by.not_in(alive)),
        )
        .values(due_at=now + every, taken_by=consumer, running_since=now)
    )
    return taken.rowcount == 1


def end_turn(session: Session, name: str, consumer: str) -> None:
    """The run of `consumer`'s turn of `name` is over (whatever its outcome)."""
    session.execute(
        update(FlowSchedule)
        .where(FlowSchedule.name == name, FlowSchedule.taken_by == consumer)
        .values(running_since=None)
    )
