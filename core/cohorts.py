"""A research cohort: which studies a request selects (never who is in them)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


class CohortError(ValueError):
    """A cohort definition that cannot be used; the message says which field."""


@dataclass(frozen=True)
class Cohort:
    """Studies matching every given criterion; empty criteria match everything.

    `has_final_report` keeps studies whose report is final or amended; `study_uids`
    (the command line's `--study`) limits the cohort to those studies.
    """

    modality: str = ""
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    body_part: str = ""
    description_contains: str = ""
    has_final_report: bool = False
    institution: str = ""
    study_uids: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["date_from"] = self.date_from.isoformat() if self.date_from else None
        data["date_to"] = self.date_to.isoformat() if self.date_to else None
        data["study_uids"] = list(self.study_uids)
        return data


def parse_cohort(data: Mapping[str, Any]) -> Cohort:
    """A cohort from JSON-like data (API bodies, stored requests, command-line options)."""
    known = set(Cohort.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise CohortError(f"unknown cohort field(s): {', '.join(unknown)}")
    dates = {key: parse_date(data.get(key), key) for key in ("date_from", "date_to")}
    if dates["date_from"] and dates["date_to"] and dates["date_from"] > dates["date_to"]:
        raise CohortError("date_from is after date_to")
    text = {
        key: str(data.get(key) or "").strip()
        for key in ("modality", "body_part", "description_contains", "institution")
    }
    if len(text["modality"]) > 16:
        raise CohortError("modality is at most 16 characters")
    uids = data.get("study_uids") or ()
    if isinstance(uids, str) or not all(isinstance(uid, str) for uid in uids):
        raise CohortError("study_uids is a list of Study Instance UIDs")
    return Cohort(
        modality=text["modality"].upper(),
        date_from=dates["date_from"],
        date_to=dates["date_to"],
        body_part=text["body_part"].upper(),
        description_contains=text["description_contains"],
        has_final_report=bool(data.get("has_final_report", False)),
        institution=text["institution"],
        study_uids=tuple(uids),
    )


def parse_date(value: Any, name: str) -> datetime.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise CohortError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None
