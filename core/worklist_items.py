"""Modality Worklist and MPPS datasets: what a modality asks and what it is told.

The query keys read from a C-FIND identifier, the worklist item built from an order, and
what an MPPS N-CREATE or N-SET says. Pure pydicom, no network, no database.
"""

from __future__ import annotations

import datetime
from typing import Protocol

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from core.orders import PerformedStatus, WorklistQuery

DICOM_PRIORITIES = {"STAT": "STAT", "URGENT": "HIGH", "ROUTINE": "ROUTINE"}


class WorklistEntry(Protocol):
    """What an order offers a worklist item (storage's Order has these attributes)."""

    accession_number: str
    requested_procedure_id: str
    scheduled_step_id: str
    study_instance_uid: str
    modality: str
    scheduled_station_aet: str
    scheduled_station_name: str
    scheduled_at: datetime.datetime | None
    procedure_code: str
    procedure_scheme: str
    procedure_text: str
    priority: str
    reason: str
    referring_physician: str
    patient_id: str
    patient_id_issuer: str
    patient_name: str
    patient_birth_date: datetime.date | None
    patient_sex: str
    status: str


def read_text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword, "")
    return str(value).strip() if value is not None else ""


def parse_da(text: str) -> datetime.date | None:
    try:
        return datetime.datetime.strptime(text.strip(), "%Y%m%d").date() if text.strip() else None
    except ValueError:
        raise ValueError(f"not a DICOM date: {text!r}") from None


def parse_date_range(text: str) -> tuple[datetime.date | None, datetime.date | None]:
    """DA matching: a date, or a range "from-to" with either end open."""
    if "-" in text:
        start, end = text.split("-", 1)
        return parse_da(start), parse_da(end)
    day = parse_da(text)
    return day, day


def read_worklist_query(identifier: Dataset) -> WorklistQuery:
    """The matching keys: Scheduled Procedure Step's modality, station AE and start date,
    patient id and name, accession number (universal matches and absent keys alike ignored)."""
    steps = identifier.get("ScheduledProcedureStepSequence") or []
    step = steps[0] if len(steps) else Dataset()
    date_from, date_to = parse_date_range(read_text(step, "ScheduledProcedureStepStartDate"))

    def key(dataset: Dataset, keyword: str) -> str:
        value = read_text(dataset, keyword)
        return "" if value in ("*", "") else value

    return WorklistQuery(
        modality=key(step, "Modality"),
        station_aet=key(step, "ScheduledStationAETitle"),
        date_from=date_from,
        date_to=date_to,
        patient_id=key(identifier, "PatientID"),
        patient_name=key(identifier, "PatientName"),
        accession_number=key(identifier, "AccessionNumber"),
    )


def build_worklist_item(entry: WorklistEntry) -> Dataset:
    """One Modality Worklist item (PS3.4 K.6.1) for an open order, UTF-8."""
    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 192"
    item.PatientName = entry.patient_name
    item.PatientID = entry.patient_id
    item.IssuerOfPatientID = entry.patient_id_issuer
    item.PatientBirthDate = (
        entry.patient_birth_date.strftime("%Y%m%d") if entry.patient_birth_date else ""
    )
    item.PatientSex = entry.patient_sex
    item.AccessionNumber = entry.accession_number
    item.ReferringPhysicianName = entry.referring_physician
    item.RequestedProcedureID = entry.requested_procedure_id
    item.RequestedProcedureDescription = entry.procedure_text[:64]
    item.RequestedProcedurePriority = DICOM_PRIORITIES.get(entry.priority, "ROUTINE")
    item.ReasonForTheRequestedProcedure = entry.reason[:64]
    item.StudyInstanceUID = entry.study_instance_uid
    item.RequestedProcedureCodeSequence = Sequence(procedure_codes(entry))
    step = Dataset()
    step.Modality = entry.modality
    step.ScheduledStationAETitle = entry.scheduled_station_aet
    step.ScheduledStationName = entry.scheduled_station_name
    step.ScheduledProcedureStepStartDate = (
        entry.scheduled_at.strftime("%Y%m%d") if entry.scheduled_at else ""
    )
    step.ScheduledProcedureStepStartTime = (
        entry.scheduled_at.strftime("%H%M%S") if entry.scheduled_at else ""
    )
    step.ScheduledProcedureStepID = entry.scheduled_step_id
    step.ScheduledProcedureStepDescription = entry.procedure_text[:64]
    step.ScheduledPerformingPhysicianName = ""
    step.ScheduledProcedureStepStatus = "STARTED" if entry.status == "in_progress" else "SCHEDULED"
    step.ScheduledProtocolCodeSequence = Sequence(procedure_codes(entry))
    item.ScheduledProcedureStepSequence = Sequence([step])
    return item


def procedure_codes(entry: WorklistEntry) -> list[Dataset]:
    if not entry.procedure_code:
        return []
    code = Dataset()
    code.CodeValue = entry.procedure_code[:16]
    code.CodingSchemeDesignator = entry.procedure_scheme[:16] or "L"
    code.CodeMeaning = entry.procedure_text[:64] or entry.procedure_code[:64]
    return [code]


def keep_requested(item: Dataset, identifier: Dataset) -> Dataset:
    """Only the attributes the query asked for (and the character set), as C-FIND answers."""
    answer = Dataset()
    answer.SpecificCharacterSet = item.SpecificCharacterSet
    for element in identifier:
        if element.keyword in item and element.keyword != "SpecificCharacterSet":
            answer[element.tag] = item[element.tag]
    return answer


def read_dicom_datetime(dataset: Dataset, date_keyword: str, time_keyword: str):
    """A DA + TM pair as a naive wall-clock datetime; None when absent or unreadable."""
    date_text, time_text = read_text(dataset, date_keyword), read_text(dataset, time_keyword)
    if not date_text:
        return None
    digits = (time_text.split(".")[0] + "000000")[:6]
    try:
        return datetime.datetime.strptime(date_text + digits, "%Y%m%d%H%M%S")
    except ValueError:
        return None


def read_performed_status(dataset: Dataset) -> PerformedStatus | None:
    text = read_text(dataset, "PerformedProcedureStepStatus").upper()
    if not text:
        return None
    try:
        return PerformedStatus(text)
    except ValueError:
        raise ValueError(f"unknown Performed Procedure Step Status {text!r}") from None


def read_step_references(dataset: Dataset) -> tuple[str, str, str]:
    """(accession number, scheduled step id, study UID) of the step the MPPS performs."""
    references = dataset.get("ScheduledStepAttributesSequence") or []
    reference = references[0] if len(references) else Dataset()
    return (
        read_text(reference, "AccessionNumber"),
        read_text(reference, "ScheduledProcedureStepID"),
        read_text(reference, "StudyInstanceUID"),
    )
