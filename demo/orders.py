"""The demo department's orders: one for each demo study (its accession number, patient and
priority, placed before the images arrive) and a few scheduled later today, for the worklist.

Built as a HIS would send them (ORM^O01); `pacs demo` applies them like the listener does.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from pydicom import Dataset

from core.hl7_messages import OrderControl, OrderFields, PatientIdentity, build_order_message
from core.records import DICOM_PRIORITIES, Priority
from demo.studies import DemoStudy

# Upcoming exams for the Scheduled tab and `findscu -W`: (modality, station AE, procedure).
UPCOMING = (
    ("CT", "DEMO-CT", "CTABD", "CT abdomen with contrast"),
    ("MR", "DEMO-MR", "MRKNEE", "MR knee"),
    ("CR", "DEMO-CR", "CRCHEST", "Chest two views"),
    ("US", "DEMO-US", "USABD", "US abdomen"),
)


def text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def read_datetime(date_text: str, time_text: str) -> datetime.datetime | None:
    if not date_text:
        return None
    digits = (time_text.split(".")[0] + "000000")[:6]
    return datetime.datetime.strptime(date_text + digits, "%Y%m%d%H%M%S")


def patient_of(ds: Dataset) -> PatientIdentity:
    birth = text(ds, "PatientBirthDate")
    return PatientIdentity(
        patient_id=text(ds, "PatientID"),
        issuer="DEMO",
        name=text(ds, "PatientName"),
        birth_date=datetime.datetime.strptime(birth, "%Y%m%d").date() if birth else None,
        sex=text(ds, "PatientSex"),
    )


def order_for_study(study: DemoStudy) -> tuple[OrderFields, PatientIdentity]:
    ds = study.datasets[0]
    started = read_datetime(text(ds, "StudyDate"), text(ds, "StudyTime"))
    ordered = read_datetime(
        text(ds, "IssueDateOfImagingServiceRequest"), text(ds, "IssueTimeOfImagingServiceRequest")
    )
    fields = OrderFields(
        control=OrderControl.NEW,
        placer_order_number=f"DEMO-{study.accession_number}",
        filler_order_number=study.accession_number,
        accession_number=study.accession_number,
        requested_procedure_id=f"RP-{study.accession_number}"[:16],
        scheduled_step_id=f"SPS-{study.accession_number}"[:16],
        study_instance_uid=study.study_instance_uid,
        modality=study.modality,
        scheduled_station_aet=f"DEMO-{study.modality}",
        scheduled_at=started,
        ordered_at=ordered or (started - datetime.timedelta(hours=2) if started else None),
        procedure_code=study.modality + "EXAM",
        procedure_scheme="L",
        procedure_text=study.description,
        priority=DICOM_PRIORITIES.get(text(ds, "RequestedProcedurePriority"), Priority.ROUTINE),
        reason="",
        referring_physician=text(ds, "ReferringPhysicianName"),
    )
    return fields, patient_of(ds)


def build_demo_orders(
    studies: Sequence[DemoStudy], now: datetime.datetime
) -> list[tuple[OrderFields, PatientIdentity]]:
    """Orders for the demo studies, then the upcoming ones (`now`: the local wall clock)."""
    orders = [order_for_study(study) for study in studies]
    patients = [patient for _, patient in orders]
    day = now.strftime("%Y%m%d")
    for index, (modality, station, code, description) in enumerate(UPCOMING):
        accession = f"SCH{day}{index + 1}"
        orders.append(
            (
                OrderFields(
                    control=OrderControl.NEW,
                    placer_order_number=f"DEMO-{accession}",
                    accession_number=accession,
                    requested_procedure_id=f"RP-{accession}",
                    scheduled_step_id=f"SPS-{accession}",
                    modality=modality,
                    scheduled_station_aet=station,
                    scheduled_at=(now + datetime.timedelta(hours=index + 1)).replace(
                        second=0, microsecond=0
                    ),
                    ordered_at=now.replace(second=0, microsecond=0),
                    procedure_code=code,
                    procedure_scheme="L",
                    procedure_text=description,
                    priority=Priority.URGENT if index == 0 else Priority.ROUTINE,
                    reason="demo order",
                    referring_physician=orders[0][0].referring_physician,
                ),
                patients[index % len(patients)],
            )
        )
    return orders


def build_demo_order_messages(studies: Sequence[DemoStudy], now: datetime.datetime) -> list[bytes]:
    """The demo orders as ORM^O01 messages; control ids stable within a day (a re-run is
    answered as duplicates)."""
    day = now.strftime("%Y%m%d")
    return [
        build_order_message(
            fields, patient, control_id=f"DEMO-{day}-{index}", now=now.replace(microsecond=0)
        ).encode("utf-8")
        for index, (fields, patient) in enumerate(build_demo_orders(studies, now))
    ]
