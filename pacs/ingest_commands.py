"""`pacs ingest` and `pacs quarantine`: the pipeline's operations from the command line."""

from __future__ import annotations

import datetime
from typing import TextIO

from config.settings import Settings
from core.changes import describe_withheld_removals
from core.identity import IdentityDecision
from core.quarantine import QuarantineError, QuarantineState
from pacs.engine import use_engine
from storage.accounts import write_audit
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.studies import (
    count_pipeline,
    list_quarantine,
    resolve_quarantine,
)


class CommandError(RuntimeError):
    """The command cannot do what was asked; the message says why."""


def run_reconcile(
    settings: Settings, since: int | None, out: TextIO, *, accept_removals: bool = False
) -> int:
    """Run `reconcile_archive` in-process; exit status 1 when some studies failed or too
    many had gone from the archive to be marked removed unasked."""
    with use_engine(settings):
        from flows.reconcile_archive import reconcile_archive

        summary = reconcile_archive(since=since, accept_removals=accept_removals)
    counts = ", ".join(f"{n} {what}" for what, n in sorted(summary.outcomes.items()) if n)
    out.write(f"ingest: changes {summary.start}..{summary.end}: {counts or 'nothing new'}\n")
    problems = [describe_withheld_removals(summary.withheld)] if summary.withheld else []
    if summary.failed:
        problems.append(
            f"{len(summary.failed)} studies failed and will be retried: {', '.join(summary.failed)}"
        )
    if problems:
        raise CommandError("; ".join(problems))
    return 0


def print_status(settings: Settings, out: TextIO) -> int:
    with open_session(settings.database_url) as session:
        counts = count_pipeline(session)
    with ArchiveClient.from_settings(settings, timeout=10) as client:
        last = client.get_last_change()
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.studies_by_status.items()))
    out.write(
        f"last processed change: {counts.change_cursor} (archive at {last}, "
        f"{max(0, last - counts.change_cursor)} changes behind)\n"
        f"studies: {statuses or 'none'}\n"
        f"quarantine: {counts.open_quarantine} open\n"
        f"waiting for retry: {counts.retries}\n"
    )
    return 0


def print_quarantine(settings: Settings, out: TextIO) -> int:
    with open_session(settings.database_url) as session:
        entries = list_quarantine(session)
    if not entries:
        out.write("quarantine: empty\n")
    for entry in entries:
        reasons = "; ".join(reason["message"] for reason in entry.reasons)
        out.write(
            f"{entry.orthanc_id}  {entry.study_instance_uid or '-'}  "
            f"{entry.patient_id or '-'}  {entry.instance_count} instances  {reasons}\n"
        )
    return 0


def release_study(
    settings: Settings,
    key: str,
    by: str,
    out: TextIO,
    identity: IdentityDecision | None = None,
) -> int:
    """Release a quarantined study: re-validate it and put it on the worklist (a reported
    study whose identity changed: keeping the recorded identity or accepting the new one)."""
    orthanc_id = resolve_open_entry(settings, key, QuarantineState.RELEASED, by, identity)
    with use_engine(settings):
        from flows.ingest_study import ingest_study

        try:
            outcome = ingest_study(orthanc_id)
        except RuntimeError as error:
            raise CommandError(f"{key} could not be ingested: {error}") from None
    if outcome.outcome == "quarantined":
        raise CommandError(f"{key} cannot be released: {', '.join(outcome.findings)}")
    out.write(f"quarantine: released {key} ({outcome.outcome})\n")
    return 0


def delete_study(settings: Settings, key: str, by: str, out: TextIO) -> int:
    """Delete a quarantined study from the archive; its quarantine entry stays as history."""
    orthanc_id = resolve_open_entry(settings, key, QuarantineState.DELETED, by)
    with ArchiveClient.from_settings(settings) as client:
        client.delete_study(orthanc_id)
    out.write(f"quarantine: deleted {key} from the archive\n")
    return 0


def resolve_open_entry(
    settings: Settings, key: str, state: str, by: str, identity: IdentityDecision | None = None
) -> str:
    """Resolve the entry and write the audit event, as the portal does."""
    now = datetime.datetime.now(datetime.UTC)
    try:
        with open_session(settings.database_url) as session:
            resolved = resolve_quarantine(session, key, state, by, now, identity)
            write_audit(
                session,
                action=f"quarantine_{'release' if state == QuarantineState.RELEASED else 'delete'}",
                outcome="success",
                now=now,
                email=by,
                object_type="study",
                object_id=resolved.orthanc_id,
                study_uid=resolved.study_instance_uid[:64],
                detail=resolved.detail,
            )
            return resolved.orthanc_id
    except QuarantineError as error:
        raise CommandError(f"{error} (see `pacs quarantine list`)") from None
