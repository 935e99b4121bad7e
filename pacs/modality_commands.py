"""`pacs modality add|list|remove`: the AEs the archive's DICOM port accepts.

The operational database holds the list; every change is audited and then
applied to a running archive at once (a stopped one reads it when it starts).
"""

from __future__ import annotations

import datetime
import getpass
from collections.abc import Iterable
from typing import TextIO

from sqlalchemy.orm import Session

from config.settings import Settings
from core.modalities import Modality, check_aet, check_modality
from storage.accounts import write_audit
from storage.archive import ArchiveClient, ArchiveUnavailable
from storage.database import open_session
from storage.modalities import (
    add_modality,
    ensure_modality,
    list_modalities,
    remove_modality,
    sync_archive_modalities,
)

# Callers that only send need a port too: the standard DICOM port says "none of its own".
LOCAL_PORT = 104


def add(settings: Settings, aet: str, host: str, port: str, description: str, out: TextIO) -> int:
    modality = check_modality(aet, host, port, description)
    with open_session(settings.database_url) as session:
        now = datetime.datetime.now(datetime.UTC)
        add_modality(session, modality, now)
        audit_change(session, "modality_add", modality, now)
    out.write(f"modality {modality.aet} registered ({modality.host}, port {modality.port})\n")
    out.write(apply_to_archive(settings) + "\n")
    return 0


def remove(settings: Settings, aet: str, out: TextIO) -> int:
    with open_session(settings.database_url) as session:
        now = datetime.datetime.now(datetime.UTC)
        modality = remove_modality(session, check_aet(aet))
        audit_change(session, "modality_remove", modality, now)
    out.write(f"modality {modality.aet} removed\n")
    out.write(apply_to_archive(settings) + "\n")
    return 0


def print_modalities(settings: Settings, out: TextIO) -> int:
    with open_session(settings.database_url) as session:
        modalities = list_modalities(session)
    if settings.dicom_accept_any:
        out.write("PACS_DICOM_ACCEPT_ANY=1: any AE may store; query and retrieve need one below\n")
    if not modalities:
        out.write("no modality registered: `pacs modality add AET --host IP --port N` adds one\n")
    for modality in modalities:
        out.write(f"{modality.aet}\t{modality.host}\t{modality.port}\t{modality.description}\n")
    return 0


def register_local_callers(settings: Settings, aets: Iterable[str], description: str) -> str:
    """Register AEs that call from this machine (the demo, tests) unless they are; apply."""
    with open_session(settings.database_url) as session:
        now = datetime.datetime.now(datetime.UTC)
        for aet in aets:
            ensure_modality(session, check_modality(aet, "127.0.0.1", LOCAL_PORT, description), now)
    return apply_to_archive(settings)


def audit_change(session: Session, action: str, modality: Modality, now: datetime.datetime) -> None:
    write_audit(
        session,
        action=action,
        outcome="success",
        now=now,
        email=f"cli:{getpass.getuser()}",
        object_type="modality",
        object_id=modality.aet,
        detail=f"host={modality.host} port={modality.port}",
    )


def apply_to_archive(settings: Settings) -> str:
    """Bring a running archive in line with the database; a stopped one does so at start."""
    with open_session(settings.database_url) as session:
        modalities = list_modalities(session)
    try:
        with ArchiveClient.from_settings(settings, timeout=10) as client:
            sync_archive_modalities(client, modalities)
    except ArchiveUnavailable:
        return "the archive is not running: it applies the list when it starts"
    return f"the archive now accepts {len(modalities)} registered modalities"
