"""The number of studies the database keeps (`study_totals`, revision 0010), which the
worklist's unfiltered counts read instead of counting the table: equal to a count of the
table after every kind of write, on both backends, with several writers at once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, func, insert, select, text

from storage.database import create_database_engine, open_session
from storage.models.studies import Study
from storage.worklist import STUDY_TOTAL
from tests.support.apps import make_study

COLUMNS = [column.key for column in Study.__table__.columns if column.key != "id"]


def read_total_and_count(url: str) -> tuple[int, int]:
    with open_session(url) as session:
        return session.scalar(STUDY_TOTAL), session.scalar(select(func.count(Study.id)))


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
