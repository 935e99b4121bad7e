"""Registered DICOM modalities in the operational database, and the archive brought in line.

The database is the source of truth: Orthanc's list of known modalities is
rendered from it at start and replaced through its REST API on every change
(`sync_archive_modalities`, idempotent).
"""

from __future__ import annotations

import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.modalities import Modality, ModalityError
from storage.archive import ArchiveClient, JsonDict
from storage.models.modalities import RegisteredModality


def list_modalities(session: Session) -> list[Modality]:
    rows = session.scalars(select(RegisteredModality).order_by(RegisteredModality.aet))
    return [row.to_modality() for row in rows]


def find_modality(session: Session, aet: str) -> RegisteredModality | None:
    """AE titles are compared without case, as the archive compares them."""
    return session.scalars(
        select(RegisteredModality).where(func.upper(RegisteredModality.aet) == aet.upper())
    ).first()


def add_modality(session: Session, modality: Modality, now: datetime.datetime) -> None:
    if find_modality(session, modality.aet) is not None:
        raise ModalityError(f"AE title {modality.aet} is already registered")
    row = RegisteredModality(
        aet=modality.aet,
        host=modality.host,
        port=modality.port,
        description=modality.description,
        added_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # registered by another process meanwhile; the caller rolls back
        raise ModalityError(f"AE title {modality.aet} is already registered") from None


def ensure_modality(session: Session, modality: Modality, now: datetime.datetime) -> bool:
    """Register `modality` unless its AE title is; True when it was added (demo, tests)."""
    if find_modality(session, modality.aet) is not None:
        return False
    add_modality(session, modality, now)
    return True


def remove_modality(session: Session, aet: str) -> Modality:
    row = find_modality(session, aet)
    if row is None:
        raise ModalityError(f"AE title {aet} is not registered")
    session.delete(row)
    session.flush()
    return row.to_modality()


def to_archive_definition(modality: Modality) -> JsonDict:
    """Orthanc's entry for a registered modality: it may store, query and retrieve."""
    return {
        "AET": modality.aet,
        "Host": modality.host,
        "Port": modality.port,
        "AllowEcho": True,
        "AllowStore": True,
        "AllowFind": True,
        "AllowMove": True,
        "AllowGet": True,
        "AllowFindWorklist": False,
    }


def sync_archive_modalities(client: ArchiveClient, modalities: list[Modality]) -> None:
    """Make the archive's known modalities exactly `modalities` (safe to repeat)."""
    wanted = {modality.aet: to_archive_definition(modality) for modality in modalities}
    for name in set(client.list_modality_names()) - wanted.keys():
        client.delete_modality(name)
    for name, definition in wanted.items():
        client.put_modality(name, definition)
