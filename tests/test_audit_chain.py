"""The audit trail is tamper-evident: a hash chain that `pacs audit verify` checks."""

from __future__ import annotations

import datetime
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import load_settings
from core.audit import chain_audit_hash
from storage.accounts import write_audit
from storage.audit_chain import AuditChainError, audit_fields, verify_audit_chain
from storage.database import create_database_engine, open_session
from storage.models.accounts import AuditChainHead, AuditEvent
from storage.schema import upgrade_database
from tests.support.services import make_env, run_pacs

NOW = datetime.datetime(2026, 11, 30, 9, 0, tzinfo=datetime.UTC)


def make_trail(home: Path, events: int = 6) -> tuple[dict[str, str], Path]:
    """A database with `events` audit events; returns its environment and SQLite file."""
    env = make_env(home)
    settings = load_settings(env)
    with open_session(settings.database_url) as session:
        for n in range(events):
            write_audit(
                session,
                action="view_study",
                outcome="success",
                now=NOW + datetime.timedelta(seconds=n),
                email="alice@example.org",
                study_uid=f"1.2.3.{n}",
                detail="Müller^Jürgen" if n == 2 else "",
            )
    return env, home / "pacs.sqlite3"


def tamper(database: Path, statement: str) -> None:
    """What someone with the database file could do, outside the platform."""
    with sqlite3.connect(database) as connection:
        connection.execute(statement)


def test_verify_passes_on_a_good_chain(tmp_path: Path) -> None:
    env, _ = make_trail(tmp_path)
    result = run_pacs(env, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "audit chain intact: 6 events"


def test_verify_names_an_edited_event(tmp_path: Path) -> None:
    env, database = make_trail(tmp_path)
    tamper(database, "UPDATE audit_events SET user_email = 'mallory@example.org' WHERE id = 3")
    result = run_pacs(env, "audit", "verify")
    assert result.returncode == 1
    assert result.stderr.startswith("pacs: audit chain broken at event 3:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_names_the_event_after_a_deleted_one(tmp_path: Path) -> None:
    env, database = make_trail(tmp_path)
    tamper(database, "DELETE FROM audit_events WHERE id = 4")
    result = run_pacs(env, "audit", "verify")
    assert result.returncode == 1
    assert "broken at event 5" in result.stderr and "deleted" in result.stderr


def test_verify_notices_the_last_events_deleted(tmp_path: Path) -> None:
    env, database = make_trail(tmp_path)
    tamper(database, "DELETE FROM audit_events WHERE id >= 5")
    result = run_pacs(env, "audit", "verify")
    assert result.returncode == 1
    assert "broken at event 4" in result.stderr and "records 6" in result.stderr


def test_an_edit_with_its_link_recomputed_still_breaks_the_next_link(tmp_path: Path) -> None:
    env, database = make_trail(tmp_path)
    with open_session(load_settings(env).database_url) as session:
        first, second = session.scalars(select(AuditEvent).order_by(AuditEvent.id).limit(2))
        fields = [*audit_fields(second)[:-1], "nothing to see"]  # detail is the last field
        forged = chain_audit_hash(first.chain_hash, fields)
    tamper(
        database,
        f"UPDATE audit_events SET detail = 'nothing to see', chain_hash = '{forged}' WHERE id = 2",
    )
    assert "broken at event 3" in run_pacs(env, "audit", "verify").stderr


def test_a_deleted_head_is_noticed_and_stops_the_trail(tmp_path: Path) -> None:
    env, database = make_trail(tmp_path)
    tamper(database, "DELETE FROM audit_chain")
    result = run_pacs(env, "audit", "verify")
    assert result.returncode == 1 and "head (table audit_chain) was deleted" in result.stderr
    engine = create_database_engine(load_settings(env).database_url)
    upgrade_database(engine)  # a restart does not make a new head over the evidence
    with Session(engine) as session, pytest.raises(AuditChainError):
        write_audit(session, action="after", outcome="success", now=NOW)
    engine.dispose()


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    """Four threads appending on their own connections: 100 events, one unbroken chain."""
    env, _ = make_trail(tmp_path, events=0)
    engine = create_database_engine(load_settings(env).database_url)

    def append_events(writer: int) -> None:
        for n in range(25):
            with Session(engine) as session, session.begin():
                write_audit(
                    session, action="race", outcome="success", now=NOW, detail=f"{writer}/{n}"
                )

    threads = [threading.Thread(target=append_events, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with Session(engine) as session:
        check = verify_audit_chain(session)
        assert check.intact, check.problem
        assert check.events == 100
        assert session.get(AuditChainHead, 1).event_count == 100
    engine.dispose()


def test_events_from_before_the_chain_are_chained_at_upgrade(tmp_path: Path) -> None:
    """A trail written before links existed (no hashes, no head) is chained on first start."""
    env, database = make_trail(tmp_path, events=4)
    tamper(database, "UPDATE audit_events SET chain_hash = NULL")
    tamper(database, "DELETE FROM audit_chain")
    engine = create_database_engine(load_settings(env).database_url)
    upgrade_database(engine)
    with Session(engine) as session:
        assert None not in session.scalars(select(AuditEvent.chain_hash)).all()
    engine.dispose()
    with open_session(load_settings(env).database_url) as session:
        write_audit(session, action="after_upgrade", outcome="success", now=NOW)
    result = run_pacs(env, "audit", "verify")
    assert result.stdout.strip() == "audit chain intact: 5 events", result.stderr
