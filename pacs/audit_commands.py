"""`pacs audit verify`: whether the audit trail's hash chain still holds."""

from __future__ import annotations

from typing import TextIO

from config.settings import Settings
from pacs.ingest_commands import CommandError
from storage.audit_chain import verify_audit_chain
from storage.database import open_session


def verify_audit(settings: Settings, out: TextIO) -> int:
    with open_session(settings.database_url) as session:
        check = verify_audit_chain(session)
    if not check.intact:
        raise CommandError(f"audit chain broken at event {check.broken_event_id}: {check.problem}")
    out.write(f"audit chain intact: {check.events} events\n")
    return 0
