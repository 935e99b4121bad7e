"""The pipeline's work queue: claims, leases, hand-backs and heartbeats; the scheduled
flows' turns (on both backends; the scaled-out system test runs them between processes)."""

from __future__ import annotations

import datetime
import threading

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
    end_turn,
    enqueue,
    forget_worker,
    give_back,
    live_workers,
    take_turn,
)

T0 = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
LEASE = datetime.timedelta(seconds=30)
MINUTE = datetime.timedelta(minutes=1)


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


def test_one_consumer_takes_each_turn_of_a_scheduled_flow(session: Session) -> None:
    for name in ("a", "b"):
        beat(session, name, "worker", T0)
    assert take_turn(session, "reconcile", MINUTE, "a", at(0))
    assert not take_turn(session, "reconcile", MINUTE, "b", at(0))
    assert take_turn(session, "archive", MINUTE, "b", at(0)), "each flow has turns of its own"
    end_turn(session, "reconcile", "a")
    assert not take_turn(session, "reconcile", MINUTE, "b", at(59)), "not due yet"
    assert take_turn(session, "reconcile", MINUTE, "b", at(60))


def test_no_turn_is_taken_while_the_last_run_goes_on_in_a_live_consumer(session: Session) -> None:
    beat(session, "a", "worker", T0)
    beat(session, "b", "worker", T0)
    assert take_turn(session, "warehouse", MINUTE, "a", at(0))
    beat(session, "a", "worker", at(90))  # a's run is long, and a is alive
    assert not take_turn(session, "warehouse", MINUTE, "b", at(90))
    end_turn(session, "warehouse", "a")
    assert take_turn(session, "warehouse", MINUTE, "b", at(91)), "due since 60 s, run over"


def test_the_turn_of_a_consumer_that_died_in_its_run_is_taken_again(session: Session) -> None:
    beat(session, "a", "worker", T0)
    assert take_turn(session, "warehouse", MINUTE, "a", at(0))
    beat(session, "b", "worker", at(70))
    assert not take_turn(session, "warehouse", MINUTE, "b", at(59)), "a beat 59 s ago"
    assert take_turn(session, "warehouse", MINUTE, "b", at(61)), "a silent for over 60 s"
    forget_worker(session, "b")  # stopped cleanly, mid-run: it is gone at once
    beat(session, "c", "worker", at(121))
    assert take_turn(session, "warehouse", MINUTE, "c", at(121))


def test_consumers_asking_at_once_take_one_turn(database_url: str) -> None:
    """Eight consumers, each in its own connection, ask for the same due turn at once."""
    engine = get_engine(database_url)
    with Session(engine) as session:
        for number in range(8):
            beat(session, f"w{number}", "worker", T0)
        session.commit()
    start = threading.Barrier(8)
    taken: list[str] = []

    def ask(name: str) -> None:
        start.wait()
        with Session(engine) as session:
            if take_turn(session, "reconcile", MINUTE, name, at(1)):
                taken.append(name)
            session.commit()

    threads = [threading.Thread(target=ask, args=(f"w{number}",)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(taken) == 1, taken
