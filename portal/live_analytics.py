"""Dashboards that keep up: a committed change to what analytics reads (a study, its events,
a report) asks the pipeline for a warehouse refresh, which it runs debounced, within seconds.

The portal never writes the warehouse (one writer: the pipeline's analytics flow); it only
announces, through the dispatcher it was given, that there is something to read.
"""

from __future__ import annotations

from itertools import chain

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from storage.models.reports import Report, ReportDocument
from storage.models.studies import Study, StudyEvent

WATCHED = (Study, StudyEvent, Report, ReportDocument)
CHANGED = "pacs_analytics_changed"


def watch_analytics_changes(session_class: type[Session]) -> None:
    """Listen on the portal's sessions (once per process, whatever the number of apps)."""
    if not event.contains(session_class, "after_flush", note_changes):
        event.listen(session_class, "after_flush", note_changes)
        event.listen(session_class, "after_commit", announce_changes)
        event.listen(session_class, "after_rollback", forget_changes)


def note_changes(session: Session, flush_context: object) -> None:
    if any(isinstance(o, WATCHED) for o in chain(session.new, session.dirty, session.deleted)):
        session.info[CHANGED] = True


def announce_changes(session: Session) -> None:
    if not session.info.pop(CHANGED, False) or not has_app_context():
        return
    request_refresh = getattr(
        current_app.extensions.get("pacs_dispatcher"), "request_refresh", None
    )
    if request_refresh is not None:
        request_refresh()


def forget_changes(session: Session) -> None:
    session.info.pop(CHANGED, None)
