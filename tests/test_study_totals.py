"""The numbers of studies the database keeps, in all (`study_totals`, revision 0010) and
per modality (`modality_totals`, revision 0012), which the worklist's unfiltered and
modality-only counts read instead of counting the table: equal to a count of the table after
every kind of write, on both backends, with several writers at once."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from storage.database import create_database_engine, open_session
from storage.models.studies import ModalityTotal, Study
from storage.worklist import STUDY_TOTAL, WORKLIST_STATUSES, WorklistQuery, query_worklist
from tests.support.apps import make_study

COLUMNS = [column.key for column in Study.__table__.columns if column.key != "id"]


def read_total_and_count(url: str) -> tuple[int, int]:
    """The kept total and a count of the table; also checks each modality's the same way."""
    with open_session(url) as session:
        counted = dict(
            session.execute(select(Study.modality, func.count()).group_by(Study.modality)).all()
        )
        assert read_modality_totals(url) == counted
        return session.scalar(STUDY_TOTAL), session.scalar(select(func.count(Study.id)))


def read_modality_totals(url: str) -> dict[str, int]:
    """The kept totals per modality, those at 0 left out."""
    with open_session(url) as session:
        rows = session.execute(select(ModalityTotal.modality, ModalityTotal.studies)).all()
        return {modality: n for modality, n in rows if n}


def study_row(index: int) -> dict:
    study = make_study(index)
    return {name: getattr(study, name) for name in COLUMNS}


def test_the_total_follows_each_insert_a_bulk_insert_and_deletes(database_url: str) -> None:
    assert read_total_and_count(database_url) == (0, 0)
    with open_session(database_url) as session:
        session.add_all(make_study(index) for index in range(3))
    assert read_total_and_count(database_url) == (3, 3)
    with open_session(database_url) as session:  # one statement of many rows
        session.execute(insert(Study), [study_row(index) for index in range(3, 103)])
    assert read_total_and_count(database_url) == (103, 103)
    with open_session(database_url) as session:
        session.execute(delete(Study).where(Study.id <= 10))
        session.execute(delete(Study).where(Study.id < 0))  # deletes nothing
    assert read_total_and_count(database_url) == (93, 93)


def test_a_modality_changed_moves_the_study_between_totals(database_url: str) -> None:
    """Ingestion may learn a study's modality late; a status change leaves the totals."""
    with open_session(database_url) as session:
        session.add_all(make_study(index) for index in range(6))  # CT, MR, CR twice
    assert read_modality_totals(database_url) == {"CT": 2, "MR": 2, "CR": 2}
    with open_session(database_url) as session:
        session.execute(update(Study).where(Study.id == 1).values(modality="MR"))
        session.execute(update(Study).where(Study.modality == "CR").values(modality=""))
        session.execute(update(Study).values(status="final"))
        session.execute(update(Study).where(Study.id == 2).values(modality="MR"))  # the same
    assert read_modality_totals(database_url) == {"CT": 1, "MR": 3, "": 2}
    assert read_total_and_count(database_url) == (6, 6)


def test_worklist_counts_from_the_totals_equal_the_counted_ones(database_url: str) -> None:
    """Unfiltered and modality-only counts read the totals; final is the difference, with
    the quarantined and removed studies (counted in the totals, never listed) taken out."""
    statuses = ["final"] * 5 + ["received", "in_progress", "amended", "quarantined", "removed"]
    with open_session(database_url) as session:
        session.add_all(
            make_study(index, status=statuses[index % len(statuses)]) for index in range(60)
        )
    with open_session(database_url) as session:
        for modality in (None, "CT", "mr", "XA"):
            counted = select(Study.status, func.count()).where(Study.status.in_(WORKLIST_STATUSES))
            if modality:
                counted = counted.where(Study.modality == modality.upper())
            expected = dict(session.execute(counted.group_by(Study.status)).all())
            page = query_worklist(session, WorklistQuery(modality=modality), me=None)
            assert page.counts == expected, modality
            assert page.total == sum(expected.values())
        assert query_worklist(session, WorklistQuery(), me=None).counts["final"] == 30


def test_a_rolled_back_insert_leaves_the_total(database_url: str) -> None:
    try:
        with open_session(database_url) as session:
            session.add(make_study(1))
            session.flush()
            raise RuntimeError("the transaction fails after its insert")
    except RuntimeError:
        pass
    assert read_total_and_count(database_url) == (0, 0)


def test_writers_at_once_lose_no_study(database_url: str) -> None:
    """Four threads, each inserting studies in transactions of its own: on PostgreSQL the
    row is updated under its lock at each insert, committed or rolled back with it."""
    errors: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for batch in range(10):
                first = thread * 1000 + batch * 5
                with open_session(database_url) as session:
                    session.add_all(make_study(index) for index in range(first, first + 5))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert read_total_and_count(database_url) == (200, 200)


@pytest.mark.parametrize(
    "database_backend", [pytest.param("postgresql", marks=pytest.mark.requires("initdb"))]
)
def test_truncate_on_postgresql_empties_the_total(database_url: str) -> None:
    with open_session(database_url) as session:
        session.add_all(make_study(index) for index in range(4))
    engine = create_database_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE studies CASCADE"))
    engine.dispose()
    assert read_total_and_count(database_url) == (0, 0)


@pytest.mark.parametrize(
    "database_backend", [pytest.param("postgresql", marks=pytest.mark.requires("initdb"))]
)
def test_transactions_inserting_modalities_in_opposite_orders_do_not_deadlock(
    database_url: str,
) -> None:
    """A inserts a CT study, then (later, in the same transaction) an MR one; B, starting
    in between, inserts MR then CT. Were B to take the MR row before waiting for the total
    A holds, A's second insert would wait for B: a deadlock, one of them rolled back."""
    errors: list[BaseException] = []
    a_inserted = threading.Event()

    def write(first: int, modalities: tuple[str, str], pause: float) -> None:
        try:
            with open_session(database_url) as session:
                for offset, modality in enumerate(modalities):
                    session.add(make_study(first + offset, modality=modality))
                    session.flush()
                    if first == 0 and offset == 0:
                        a_inserted.set()
                    time.sleep(pause)
        except BaseException as error:
            errors.append(error)

    a = threading.Thread(target=write, args=(0, ("CT", "MR"), 1.5))
    b = threading.Thread(target=write, args=(10, ("MR", "CT"), 0))
    a.start()
    assert a_inserted.wait(30)
    b.start()
    a.join(60)
    b.join(60)
    assert not errors, errors
    assert read_modality_totals(database_url) == {"CT": 2, "MR": 2}
