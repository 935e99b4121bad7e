"""Who a reported study is about, and what a later ingest may not change unnoticed.

Once a study has a preliminary or final report, its patient identity (Patient ID and
its issuer, name, birth date, sex) and its referring physician are what the report
and the referrer's access were decided on. Instances arriving later that say
otherwise (a corrected name, another Patient ID under the same Study UID) never
change them silently: the study is quarantined with what changed (old -> new), keeps
its report, identity and readers, and an admin decides (keep the recorded identity,
or accept the new one).
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core import tags as tg
from core.records import StudyStatus
from core.tags import Tags
from core.validation import Finding, Severity

REPORTED_STATUSES = frozenset({StudyStatus.PRELIMINARY, StudyStatus.FINAL, StudyStatus.AMENDED})
IDENTITY_CHANGED = "IDENTITY_CHANGED"


class IdentityDecision(enum.StrEnum):
    """An admin's answer to a reported study's identity change, when releasing it."""

    KEEP = "keep"  # the recorded identity stays; the new values are acknowledged
    ACCEPT = "accept"  # the new values become the study's identity (and referrer)


@dataclass(frozen=True)
class IdentityField:
    name: str  # the study record's column
    label: str
    tag: str


IDENTITY_FIELDS: tuple[IdentityField, ...] = (
    IdentityField("patient_id", "Patient ID", tg.PATIENT_ID),
    IdentityField("issuer_of_patient_id", "Issuer of Patient ID", tg.ISSUER_OF_PATIENT_ID),
    IdentityField("patient_name", "Patient name", tg.PATIENT_NAME),
    IdentityField("patient_birth_date", "Patient birth date", tg.PATIENT_BIRTH_DATE),
    IdentityField("patient_sex", "Patient sex", tg.PATIENT_SEX),
    IdentityField("referring_physician", "Referring physician", tg.REFERRING_PHYSICIAN_NAME),
)
FIELDS_BY_NAME = {f.name: f for f in IDENTITY_FIELDS}

Value = str | datetime.date | None


@dataclass(frozen=True)
class RecordedIdentity:
    """A listed study's identity as recorded, and the values an admin already decided on."""

    status: str
    values: Mapping[str, Value]  # IDENTITY_FIELDS' names -> the study's columns
    acknowledged: Mapping[str, Sequence[str]] = field(default_factory=dict)  # name -> texts

    @property
    def reported(self) -> bool:
        return self.status in REPORTED_STATUSES


@dataclass(frozen=True)
class IdentityChange:
    field: str
    old: str
    new: str

    def describe(self) -> str:
        return f"{FIELDS_BY_NAME[self.field].label} {self.old!r} -> {self.new!r}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "old": self.old, "new": self.new}


def as_text(value: Value) -> str:
    """A column's value as DICOM writes it (dates as YYYYMMDD), to compare and to show."""
    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d")
    return value or ""


def from_text(name: str, text: str) -> Value:
    """The column value for a DICOM text (the inverse of `as_text`)."""
    return tg.parse_date(text) if name == "patient_birth_date" else text


def find_identity_changes(
    recorded: RecordedIdentity, instances: Sequence[Tags]
) -> list[IdentityChange]:
    """Every identity value the instances state that is neither recorded nor acknowledged.

    An instance that leaves a value empty states nothing (our own report SRs carry no
    issuer, for one), and a malformed birth date is no date: neither counts as a change.
    """
    changes = []
    for identity in IDENTITY_FIELDS:
        old = as_text(recorded.values.get(identity.name))
        known = {old, *recorded.acknowledged.get(identity.name, ())}
        stated = {read_value(identity, instance) for instance in instances} - {""}
        changes += [IdentityChange(identity.name, old, new) for new in sorted(stated - known)]
    return changes


def read_value(identity: IdentityField, instance: Tags) -> str:
    text = tg.get_text(instance, identity.tag)
    return as_text(from_text(identity.name, text))


def describe_identity_changes(changes: Sequence[IdentityChange]) -> Finding:
    return Finding(
        IDENTITY_CHANGED,
        Severity.ERROR,
        "The identity of a reported study changed; an admin decides whether to keep the "
        "recorded identity or accept the new one: " + "; ".join(c.describe() for c in changes),
    )


def accepted_identity(changes: Sequence[IdentityChange]) -> dict[str, Value]:
    """The columns an admin's "accept" writes; refused when a field has two new values."""
    accepted: dict[str, Value] = {}
    for change in changes:
        if change.field in accepted:
            raise ValueError(
                f"{FIELDS_BY_NAME[change.field].label} has more than one new value: "
                "keep the recorded identity, or correct the archive first"
            )
        accepted[change.field] = from_text(change.field, change.new)
    return accepted


def acknowledge(
    acknowledged: Mapping[str, Sequence[str]], changes: Sequence[IdentityChange]
) -> dict[str, list[str]]:
    """`acknowledged` plus both sides of every change: neither quarantines the study again."""
    merged = {name: list(values) for name, values in acknowledged.items()}
    for change in changes:
        values = merged.setdefault(change.field, [])
        values += [text for text in (change.old, change.new) if text not in values]
    return merged
