"""A patient's earlier studies ("priors"): which are relevant to the study being read, and
the report's comparison line naming the one chosen.

Priors are the same patient's other studies: the same Patient ID from the same issuer,
never a similar name. Relevant ones share a modality or the body part with the current
study.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

MAX_PRIORS = 200  # listed per study, newest first


@dataclass(frozen=True)
class PriorStudy:
    """One prior as the lists show it (read from the database, never from the archive)."""

    study_instance_uid: str
    study_date: datetime.date | None
    modalities: str  # DICOM multi-value, "CT\\PT"
    body_part: str
    description: str
    status: str
    impression: str  # of its final report, else empty
    relevant: bool

    @property
    def comparison(self) -> str:
        return comparison_line(self.modalities, self.body_part, self.description, self.study_date)


def split_modalities(modalities: str) -> set[str]:
    return {m.strip().upper() for m in modalities.split("\\") if m.strip() and m.strip() != "SR"}


def is_relevant(
    current_modalities: str, current_body_part: str, prior_modalities: str, prior_body_part: str
) -> bool:
    """Same modality (any of the study's, reports aside) or the same body part."""
    if split_modalities(current_modalities) & split_modalities(prior_modalities):
        return True
    body_part = current_body_part.strip().upper()
    return bool(body_part) and body_part == prior_body_part.strip().upper()


def comparison_line(
    modalities: str, body_part: str, description: str, study_date: datetime.date | None
) -> str:
    """What the report's comparison section says of the chosen prior:
    "Comparison: CT chest 2026-10-02"."""
    modality = "/".join(sorted(split_modalities(modalities))) or "Study"
    what = body_part.strip().lower() or description.strip()
    when = study_date.isoformat() if study_date else "date unknown"
    return " ".join(part for part in ("Comparison:", modality, what, when) if part)
