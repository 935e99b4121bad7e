"""Concurrent writers on PostgreSQL: each read-modify-write (assignment, a report's version,
an export's state) locks its row first, so the second writer waits for the first and decides
on what it wrote. Each race also runs with the lock taken away, and there it loses an update
(both writers succeed, the last one wins): the test of the lock can fail.

SQLite has no row locks (one writer at a time, a stale reader is refused), so these run on
PostgreSQL only.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import storage.exports
import storage.reports
from core.accounts import Role
from core.assignments import AssignmentError
from core.exports import ExportError
from core.reports import ReportError
from storage.accounts import create_user
from storage.assignments import assign_study, find_listed_study
from storage.database import get_engine
from storage.exports import decide_export
from storage.models.accounts import User
from storage.models.exports import ResearchExport
from storage.models.reports import Report
from storage.models.studies import Study
from storage.reports import save_draft
from tests.support.apps import make_study

pytestmark = pytest.mark.parametrize(
    "database_backend", [pytest.param("postgresql", marks=pytest.mark.requires("initdb"))]
)
NOW = datetime.datetime(2026, 11, 30, 12, tzinfo=datetime.UTC)
UID = make_study(1).study_instance_uid
# How long the first writer keeps its transaction open for the second to read (it commits
# as soon as the second has read, which happens at once without the lock).
HOLD = 5.0


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = get_engine(database_url)
    with Session(engine) as session, session.begin():
        for name in ("one", "two"):
            create_user(session, f"{name}@example.org", "-" * 12, Role.RADIOLOGIST, NOW)
        create_user(session, "admin@example.org", "-" * 12, Role.ADMIN, NOW)
        session.add(make_study(1))
        session.add(
            ResearchExport(
                requested_by="r@example.org",
                purpose="a study of the concurrency",
                cohort={},
                profile="basic",
                state="requested",
                requested_at=NOW,
                salt="0" * 64,
            )
        )
    return engine


def race(
    engine: Engine, read: Callable[[Session], Any], write: Callable[[Session, str, Any], None]
):
    """Writers "one" then "two": each reads (`read`, which may lock) and writes in one
    transaction. One holds its written, uncommitted transaction until two has read (or for
    HOLD seconds, as two waits for the lock). Returns each writer's outcome."""
    two_read = threading.Event()
    one_wrote = threading.Event()
    outcomes: dict[str, str] = {}

    def writer(name: str) -> None:
        with Session(engine) as session:
            try:
                found = read(session)
                if name == "two":
                    two_read.set()
                write(session, name, found)
                session.flush()
                if name == "one":
                    one_wrote.set()
                    two_read.wait(HOLD)
                session.commit()
                outcomes[name] = "ok"
            except (AssignmentError, ReportError, ExportError) as error:
                session.rollback()
                outcomes[name] = type(error).__name__
            finally:
                one_wrote.set()

    first = threading.Thread(target=writer, args=("one",))
    first.start()
    assert one_wrote.wait(30)
    writer("two")
    first.join(30)
    return outcomes


def user(session: Session, name: str) -> User:
    return session.scalar(select(User).where(User.email == f"{name}@example.org"))


@pytest.mark.parametrize("locked", [True, False], ids=["locked", "unlocked"])
def test_two_radiologists_take_the_same_study(engine: Engine, locked: bool) -> None:
    def read(session: Session) -> Study:
        return find_listed_study(session, UID, for_update=locked)

    def take(session: Session, name: str, study: Study) -> None:
        assign_study(session, study, user(session, name), f"{name}@example.org", NOW)

    outcomes = race(engine, read, take)
    with Session(engine) as session:
        assignee = session.scalar(select(Study).where(Study.study_instance_uid == UID)).assignee
    if locked:
        assert outcomes == {"one": "ok", "two": "AssignmentConflict"}
        assert assignee.email == "one@example.org"
    else:  # both were told the study is theirs; the first lost it
        assert outcomes == {"one": "ok", "two": "ok"}
        assert assignee.email == "two@example.org"


@pytest.mark.parametrize("locked", [True, False], ids=["locked", "unlocked"])
def test_two_saves_of_the_same_report_version(
    engine: Engine, locked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Session(engine) as session, session.begin():
        study = find_listed_study(session, UID)
        save_draft(session, study, user(session, "one"), {"findings": "first"}, None, NOW)
    if not locked:
        find_report = storage.reports.find_report
        monkeypatch.setattr(
            "storage.reports.find_report", lambda session, study, **_: find_report(session, study)
        )

    def read(session: Session) -> tuple[Study, Report | None]:
        study = find_listed_study(session, UID, for_update=locked)
        # The version, read now (and held: the session keeps only objects referenced).
        return study, storage.reports.find_report(session, study, for_update=locked)

    def save(session: Session, name: str, found: tuple[Study, Report | None]) -> None:
        # Two tabs of the same radiologist, both at version 1.
        save_draft(session, found[0], user(session, "one"), {"findings": name}, 1, NOW)

    outcomes = race(engine, read, save)
    with Session(engine) as session:
        report = session.scalar(select(Report))
    if locked:
        assert outcomes == {"one": "ok", "two": "ReportConflict"}
        assert (report.version, report.sections["findings"]) == (2, "one")
    else:  # both saved over version 1: the first text is gone without a conflict
        assert outcomes == {"one": "ok", "two": "ok"}
        assert (report.version, report.sections["findings"]) == (2, "two")


@pytest.mark.parametrize("locked", [True, False], ids=["locked", "unlocked"])
def test_two_admins_decide_the_same_export(
    engine: Engine, locked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    get_export = storage.exports.get_export
    with Session(engine) as session:
        export_id = session.scalar(select(ResearchExport.id))

    def read(session: Session) -> ResearchExport:
        return get_export(session, export_id, for_update=locked)

    def decide(session: Session, name: str, _: ResearchExport) -> None:
        decide_export(session, export_id, approve=name == "one", reason=name, by=name, now=NOW)

    if not locked:  # decide_export's own read, without its lock, finds what `read` read
        monkeypatch.setattr(
            "storage.exports.get_export",
            lambda session, export_id, **_: get_export(session, export_id),
        )
    outcomes = race(engine, read, decide)
    with Session(engine) as session:
        export = session.get(ResearchExport, export_id)
    if locked:
        assert outcomes == {"one": "ok", "two": "ExportError"}
        assert (export.state, export.decided_by) == ("approved", "one")
    else:  # approved, then rejected by an admin who never saw the approval
        assert outcomes == {"one": "ok", "two": "ok"}
        assert (export.state, export.decided_by) == ("rejected", "two")
