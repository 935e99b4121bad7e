"""Orders: their states, what HL7 order control and MPPS do to them, and how a study's
images are compared with the order they carry the accession number of.

Pure rules, tested without a database.
"""

from __future__ import annotations

import datetime
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from core.hl7_messages import OrderControl
from core.validation import Finding, Severity


class OrderStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"  # MPPS IN PROGRESS
    COMPLETED = "completed"  # MPPS COMPLETED
    DISCONTINUED = "discontinued"  # MPPS DISCONTINUED, or ORC DC
    CANCELLED = "cancelled"  # ORC CA
    ON_HOLD = "on_hold"  # ORC HD


# Orders a modality may still perform: what the worklist (MWL and the portal) shows.
OPEN_STATUSES = frozenset({OrderStatus.SCHEDULED, OrderStatus.IN_PROGRESS})

CONTROL_STATUS = {
    OrderControl.CANCEL: OrderStatus.CANCELLED,
    OrderControl.DISCONTINUE: OrderStatus.DISCONTINUED,
    OrderControl.HOLD: OrderStatus.ON_HOLD,
}


class OrderConflict(ValueError):
    """An order control that the order's state does not allow (AE with this reason)."""


def status_after_control(current: OrderStatus | None, control: OrderControl) -> OrderStatus | None:
    """The order's status after an ORC-1 control; None leaves it as it is.

    New and change keep a performed order's status (a late NW repeats what we know);
    cancelling or holding an exam already performed is refused.
    """
    if control in (OrderControl.NEW, OrderControl.CHANGE, OrderControl.STATUS_CHANGED):
        return OrderStatus.SCHEDULED if current is None else None
    if current is None:
        raise OrderConflict(f"order control {control} for an order this archive does not know")
    if control is OrderControl.RELEASE:
        if current is not OrderStatus.ON_HOLD:
            raise OrderConflict(f"release of an order that is {current}, not on hold")
        return OrderStatus.SCHEDULED
    target = CONTROL_STATUS[control]
    if current == target:
        return None
    if control in (OrderControl.CANCEL, OrderControl.HOLD) and current not in (
        OrderStatus.SCHEDULED,
        OrderStatus.ON_HOLD,
    ):
        raise OrderConflict(f"{target} refused: the order is {current}")
    return target


class PerformedStatus(StrEnum):
    """MPPS Performed Procedure Step Status (0040,0252)."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


MPPS_STATUS = {
    PerformedStatus.IN_PROGRESS: OrderStatus.IN_PROGRESS,
    PerformedStatus.COMPLETED: OrderStatus.COMPLETED,
    PerformedStatus.DISCONTINUED: OrderStatus.DISCONTINUED,
}


@dataclass(frozen=True)
class WorklistQuery:
    """The matching keys modalities send; '*' and '?' wildcards in names and ids."""

    modality: str = ""
    station_aet: str = ""
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""


# -- matching a study to its order ---------------------------------------------------------


@dataclass(frozen=True)
class OrderedIdentity:
    """What the order says about whom the study is of."""

    patient_id: str
    patient_name: str
    patient_birth_date: object  # datetime.date | None
    study_instance_uid: str


def compare_with_order(
    order: OrderedIdentity,
    *,
    patient_id: str,
    patient_name: str,
    patient_birth_date: object,
    study_instance_uid: str,
) -> list[Finding]:
    """Where the images contradict their order: a different patient id is the wrong patient
    (an error: quarantine); a different name or birth date, or another Study Instance UID
    than the order's, is a warning (typing, a study re-sent under a new UID)."""
    findings = []
    if patient_id and order.patient_id and patient_id != order.patient_id:
        findings.append(
            Finding(
                "ORDER_PATIENT_MISMATCH",
                Severity.ERROR,
                f"wrong patient: the images are of patient {patient_id}, "
                f"the order with their accession number is for {order.patient_id}",
            )
        )
    elif patient_name and order.patient_name and not same_name(patient_name, order.patient_name):
        findings.append(
            Finding(
                "ORDER_NAME_MISMATCH",
                Severity.WARNING,
                "the patient name in the images differs from the order's",
            )
        )
    if (
        patient_birth_date
        and order.patient_birth_date
        and patient_birth_date != order.patient_birth_date
    ):
        findings.append(
            Finding(
                "ORDER_BIRTH_DATE_MISMATCH",
                Severity.WARNING,
                "the birth date in the images differs from the order's",
            )
        )
    if order.study_instance_uid and study_instance_uid != order.study_instance_uid:
        findings.append(
            Finding(
                "ORDER_STUDY_UID_MISMATCH",
                Severity.WARNING,
                "the order named another Study Instance UID for this accession number",
            )
        )
    return findings


def same_name(first: str, second: str) -> bool:
    """PN values equal but for case, accents, spaces and empty trailing components."""
    return normalize_name(first) == normalize_name(second)


def normalize_name(name: str) -> str:
    alphabetic = name.split("=")[0]
    folded = unicodedata.normalize("NFKD", alphabetic).encode("ascii", "ignore").decode()
    parts = [part.strip().upper() for part in folded.split("^")]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)
