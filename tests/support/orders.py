"""Orders as a HIS would send them, for the orders, worklist and benchmark tests."""

from __future__ import annotations

import datetime
import itertools
from dataclasses import replace

from core.hl7_messages import OrderControl, OrderFields, PatientIdentity, build_order_message
from core.records import Priority

NOW = datetime.datetime(2026, 11, 30, 9, 0)
_control_ids = itertools.count(1)

PATIENT = PatientIdentity("P100", "HOSP", "Dupont^Jérôme^^^", datetime.date(1970, 1, 2), "M")


def make_order(number: int = 1, **changes: object) -> OrderFields:
    fields = OrderFields(
        control=OrderControl.NEW,
        placer_order_number=f"PO{number}",
        filler_order_number=f"FO{number}",
        accession_number=f"ACC{number}",
        requested_procedure_id=f"RP{number}",
        scheduled_step_id=f"SPS{number}",
        modality="CT",
        scheduled_station_aet="CT01",
        scheduled_at=NOW + datetime.timedelta(hours=2),
        ordered_at=NOW,
        procedure_code="CTCHEST",
        procedure_scheme="L",
        procedure_text="CT chest",
        priority=Priority.URGENT,
        reason="cough for three weeks",
        referring_physician="House^Gregory^^Dr",
    )
    return replace(fields, **changes)  # type: ignore[arg-type]


def order_message(
    fields: OrderFields,
    patient: PatientIdentity = PATIENT,
    *,
    control_id: str | None = None,
    message_type: str = "ORM^O01",
) -> bytes:
    control = control_id or f"MSG{next(_control_ids)}"
    text = build_order_message(
        fields, patient, control_id=control, now=NOW, message_type=message_type
    )
    return text.encode("utf-8")
