"""`pacs status`: is each part of the platform up, and how far is ingestion behind?"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import requests
from sqlalchemy import func, select, text

from config.settings import Settings
from pacs.engine import is_healthy
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.models.quarantine import QuarantinedStudy
from storage.models.studies import Study
from storage.pipeline_queue import count_queued, live_workers
from storage.studies import QuarantineState, read_change_cursor

PIPELINE_SILENCE = datetime.timedelta(seconds=30)  # consumers beat every 5 s


@dataclass(frozen=True)
class Part:
    name: str
    up: bool
    detail: str


def check_archive(settings: Settings) -> Part:
    try:
        with ArchiveClient.from_settings(settings, timeout=5) as client:
            version = client.get_system()["Version"]
            studies = client.get_statistics()["CountStudies"]
    except Exception as error:
        return Part("archive", False, f"{settings.orthanc_url}: {error}")
    return Part("archive", True, f"Orthanc {version} at {settings.orthanc_url}, {studies} studies")


def check_database(settings: Settings) -> Part:
    where = settings.database_url.split("@")[-1]  # never the password
    try:
        with open_session(settings.database_url) as session:
            session.execute(text("SELECT 1"))
    except Exception as error:
        return Part("database", False, f"{where}: {type(error).__name__}: {error}".split("\n")[0])
    return Part("database", True, where)


def check_engine(settings: Settings) -> Part:
    url = settings.engine_url
    if not is_healthy(url, timeout=5):
        return Part("prefect server", False, f"nothing answers at {url}")
    return Part("prefect server", True, f"{url} (UI {url.removesuffix('/api')})")


def check_pipeline(settings: Settings) -> Part:
    now = datetime.datetime.now(datetime.UTC)
    try:
        with open_session(settings.database_url) as session:
            workers = live_workers(session, now, PIPELINE_SILENCE)
    except Exception as error:
        return Part("pipeline", False, f"cannot read its heartbeats: {type(error).__name__}")
    if not workers:
        return Part("pipeline", False, "no consumer seen for 30 s (`pacs up`, `pacs worker`)")
    names = ", ".join(f"{w.name} ({(now - w.seen_at).total_seconds():.0f} s ago)" for w in workers)
    return Part("pipeline", True, names)


def check_portal(settings: Settings) -> Part:
    url = f"{settings.portal_url}/api/v1/openapi.json"
    try:
        answer = requests.get(url, timeout=5)
    except requests.RequestException as error:
        return Part("portal", False, f"{settings.portal_url}: {type(error).__name__}")
    if not answer.ok:
        return Part("portal", False, f"{url} answered {answer.status_code}")
    return Part("portal", True, settings.portal_url)


def describe_backlog(settings: Settings) -> str:
    """Studies in the archive but neither on the worklist nor in quarantine, the queue,
    and the reconciliation cursor against the archive's last change."""
    try:
        with ArchiveClient.from_settings(settings, timeout=5) as client:
            archived = client.get_statistics()["CountStudies"]
            last_change = client.get_last_change()
        with open_session(settings.database_url) as session:
            listed = session.scalar(
                select(func.count()).select_from(Study).where(Study.removed_at.is_(None))
            )
            held = session.scalar(
                select(func.count())
                .select_from(QuarantinedStudy)
                .where(QuarantinedStudy.state == QuarantineState.OPEN)
            )
            queued = sum(count_queued(session).values())
            cursor = read_change_cursor(session)
    except Exception as error:
        return f"unknown ({type(error).__name__})"
    missing = max(0, archived - (listed or 0) - (held or 0))
    return (
        f"{missing} studies of the archive not yet on the worklist or in quarantine, "
        f"{queued} queued; reconciliation at change {cursor} of {last_change} "
        f"({max(0, last_change - cursor)} behind)"
    )


CHECKS: tuple[Callable[[Settings], Part], ...] = (
    check_archive,
    check_database,
    check_engine,
    check_pipeline,
    check_portal,
)


def print_status(settings: Settings, out: TextIO) -> int:
    """One line per part; exit status 1 when one is down."""
    parts = [check(settings) for check in CHECKS]
    for part in parts:
        out.write(f"{part.name:<15} {'up' if part.up else 'DOWN':<5} {part.detail}\n")
    out.write(f"{'ingestion':<15} {'':<5} {describe_backlog(settings)}\n")
    return 0 if all(part.up for part in parts) else 1
