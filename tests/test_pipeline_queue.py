"""The pipeline's work queue: claims, leases, hand-backs and heartbeats (SQLite here; the
scaled-out system test runs it on PostgreSQL)."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy.orm import Session

from storage.database import get_engine
from storage.pipeline_queue import (
    EXPORT,
    STUDY,
    beat,
    claim,
    complete,
    count_queued,
    enqueue,
    forget_worker,
    give_back,
    live_workers,
)

T0 = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
LEASE = datetime.timedelta(seconds=30)


@pytest.fixture
def session(database_url: str):
    with Session(get_engine(database_url)) as session:
        yield session


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def test_a_repeated_notification_queues_the_study_once(session: Session) -> None:
    enqueue(session, STUDY, "a", T0)
    enqueue(session, STUDY, "a", at(1))
    enqueue(session, EXPORT, "7", at(1))
    session.commit()
    assert count_queued(session) == {STUDY: 1, EXPORT: 1}


def test_a_study_notified_again_while_claimed_is_queued_again(session: Session) -> None:
    enqueue(session, STUDY, "a", T0)
    assert [row.key for row in claim(session, "w1", at(1), lease=LEASE, kind=STUDY, limit=10)]
    enqueue(session, STUDY, "a", at(2))  # more instances arrived while it was being ingested
    assert count_queued(session) == {STUDY: 2}


def test_two_consumers_never_claim_the_same_row(session: Session) -> None:
    for key in "abcde":
        enqueue(session, STUDY, key, T0)
    first = claim(session, "w1", at(1), lease=LEASE, kind=STUDY, limit=3)
    second = claim(session, "w2", at(1), lease=LEASE, kind=STUDY, limit=3)
    assert [row.key for row in first] == ["a", "b", "c"]
    assert [row.key for row in second] == ["d", "e"]
    assert claim(session, "w3", at(2), lease=LEASE, kind=STUDY, limit=3) == []
    assert claim(session, "w3", at(2), lease=LEASE, kind=EXPORT, limit=3) == []


def test_a_dead_consumers_rows_are_taken_again_when_the_lease_ends(session: Session) -> None:
    enqueue(session, STUDY, "a", T0)
    taken = claim(session, "dead", at(1), lease=LEASE, kind=STUDY, limit=10)
    assert claim(session, "w2", at(30), lease=LEASE, kind=STUDY, limit=10) == []
    again = claim(session, "w2", at(32), lease=LEASE, kind=STUDY, limit=10)
    assert [(row.key, row.attempts) for row in again] == [("a", 2)]
    assert again[0].id == taken[0].id and again[0].queued_at == T0
    complete(session, [row.id for row in again])
    assert count_queued(session) == {}


def test_rows_given_back_are_claimable_at_once(session: Session) -> None:
    enqueue(session, STUDY, "a", T0)
    rows = claim(session, "w1", at(1), lease=LEASE, kind=STUDY, limit=10)
    give_back(session, [row.id for row in rows])
    assert [row.key for row in claim(session, "w2", at(2), lease=LEASE, kind=STUDY, limit=1)] == [
        "a"
    ]


def test_heartbeats_tell_live_consumers_from_dead_ones(session: Session) -> None:
    beat(session, "alive", "worker", T0)
    beat(session, "dead", "worker", T0)
    beat(session, "alive", "worker", at(50))
    session.commit()
    window = datetime.timedelta(seconds=30)
    assert [w.name for w in live_workers(session, at(55), window)] == ["alive"]
    forget_worker(session, "alive")
    assert live_workers(session, at(55), window) == []
