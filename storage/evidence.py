"""A study's SR evidence in the operational database: written at ingestion (new instances
added, vanished ones dropped, so a late series costs its own rows only), read when a signed
report's SR is built."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from core.evidence import EvidenceInstance, StudyHeader, sort_evidence
from storage.models.evidence import EvidenceHeader, EvidenceItem

DELETE_BATCH = 500


def save_evidence(
    session: Session,
    study_id: int,
    header: StudyHeader,
    evidence: Sequence[EvidenceInstance],
    *,
    prune: bool = True,
) -> int:
    """Bring the study's evidence up to date; returns how many instances were added.
    `prune`: `evidence` is the whole study's, and instances recorded but not in it go;
    else it is only what series just read add."""
    row = session.get(EvidenceHeader, study_id)
    if row is None:
        session.add(EvidenceHeader(study_id=study_id, header=dataclasses.asdict(header)))
    elif row.header != dataclasses.asdict(header):
        row.header = dataclasses.asdict(header)
    known = set(
        session.scalars(
            select(EvidenceItem.sop_instance_uid).where(EvidenceItem.study_id == study_id)
        )
    )
    wanted = {item.sop_instance_uid for item in evidence}
    added = [
        {"study_id": study_id, **dataclasses.asdict(item)}
        for item in evidence
        if item.sop_instance_uid not in known
    ]
    if added:
        session.execute(insert(EvidenceItem), added)
    gone = sorted(known - wanted) if prune else []
    for start in range(0, len(gone), DELETE_BATCH):
        session.execute(
            delete(EvidenceItem).where(
                EvidenceItem.study_id == study_id,
                EvidenceItem.sop_instance_uid.in_(gone[start : start + DELETE_BATCH]),
            )
        )
    return len(added)


def load_evidence(
    session: Session, study_id: int
) -> tuple[StudyHeader, list[EvidenceInstance]] | None:
    """The header and evidence recorded at ingestion, or None for a study ingested before
    they were recorded."""
    row = session.get(EvidenceHeader, study_id)
    if row is None:
        return None
    rows = session.execute(
        select(
            EvidenceItem.series_instance_uid,
            EvidenceItem.sop_instance_uid,
            EvidenceItem.sop_class_uid,
        ).where(EvidenceItem.study_id == study_id)
    )
    return StudyHeader(**row.header), sort_evidence(EvidenceInstance(*r) for r in rows)
