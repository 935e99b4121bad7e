"""Orders from the hospital (HL7 ORM/OMI, ADT), the messages that brought them, the modalities
allowed to ask for them, and the ORU^R01 results outbox.

Every HL7 message is applied and stored in one transaction with its answer: an AA is only
sent once both are committed, so an accepted message is never lost, and a message repeated
(same sender and control id) is recognised and not applied twice.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, bindparam, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.hl7_messages import (
    AckCode,
    MessageRejected,
    OrderControl,
    OrderFields,
    PatientIdentity,
    ReceivedMessage,
    build_ack,
    decode_message,
)
from core.ingest import Assessment, override_error
from core.orders import (
    MPPS_STATUS,
    OPEN_STATUSES,
    OrderConflict,
    OrderedIdentity,
    OrderStatus,
    PerformedStatus,
    WorklistQuery,
    compare_with_order,
    status_after_control,
)
from core.records import Priority
from storage.database import open_session
from storage.modalities import find_modality
from storage.models.orders import Hl7Message, Order
from storage.models.studies import Study
from storage.studies import save_assessment

log = logging.getLogger(__name__)


# -- HL7 in ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    code: AckCode
    text: str


# Built once: constructing a statement costs more than running it, at hundreds a second.
MESSAGE_BY_DEDUP_KEY = select(Hl7Message).where(Hl7Message.dedup_key == bindparam("key"))
ORDER_BY_PLACER_NUMBER = select(Order).where(Order.placer_order_number == bindparam("number"))
# A batch's new orders are found by their numbers alone: loading whole orders costs a mapper
# set-up even when none is found, as most NW messages find none.
PLACER_NUMBER_IN = Order.placer_order_number.in_(bindparam("numbers", expanding=True))
KNOWN_PLACER_NUMBERS = select(Order.placer_order_number).where(PLACER_NUMBER_IN)
ORDERS_BY_PLACER_NUMBERS = select(Order).where(PLACER_NUMBER_IN)


def dedup_key(received: ReceivedMessage) -> str:
    return "|".join((received.sending_application, received.sending_facility, received.control_id))[
        :200
    ]


def find_duplicate(session: Session, received: ReceivedMessage) -> Applied | None:
    """The answer to a message already accepted under the same sender and control id."""
    earlier = session.scalar(MESSAGE_BY_DEDUP_KEY, {"key": dedup_key(received)})
    if earlier is None:
        return None
    if earlier.digest != received.digest:
        return Applied(
            AckCode.REJECT,
            f"control id {received.control_id} was already used by another message "
            f"(message {earlier.id})",
        )
    return Applied(AckCode.ACCEPT, f"duplicate of message {earlier.id}: already applied")


def apply_message(
    session: Session,
    received: ReceivedMessage,
    raw: bytes,
    peer: str,
    now: datetime.datetime,
    batch_orders: dict[str, Order] | None = None,
) -> Applied:
    """Apply an accepted message and store it, in the caller's transaction; raises
    MessageRejected (AE) when its content cannot be applied: the caller rolls back.

    `batch_orders`, for a batch: its orders, read beforehand in one query (by placer number;
    the batch's new ones join them). A batch does not look for duplicates: a repeat fails it
    at its unique key, and is answered as one when the batch is received one by one."""
    duplicate = find_duplicate(session, received) if batch_orders is None else None
    if duplicate is not None:  # kept as received too, applied once only
        session.add(build_message_row(received, raw, peer, now, duplicate.code, duplicate.text))
        return duplicate
    assert received.patient is not None
    if received.message_type == "ADT^A08":
        count = update_patient(session, received.patient, received.patient.patient_id, now)
        text = f"patient {received.patient.patient_id} updated on {count} orders"
    elif received.message_type == "ADT^A40":
        count = update_patient(session, received.patient, received.prior_patient_id, now)
        text = (
            f"patient {received.prior_patient_id} merged into "
            f"{received.patient.patient_id}: {count} orders moved"
        )
    else:
        changes = [
            apply_order(session, fields, received.patient, now, batch_orders)
            for fields in received.orders
        ]
        text = "; ".join(changes)
    # A concurrent twin fails at the commit (IntegrityError) and is answered as one.
    session.add(
        build_message_row(received, raw, peer, now, AckCode.ACCEPT, text, key=dedup_key(received))
    )
    return Applied(AckCode.ACCEPT, text)


def build_message_row(
    received: ReceivedMessage | None,
    raw: bytes,
    peer: str,
    now: datetime.datetime,
    code: AckCode,
    text: str,
    *,
    key: str | None = None,
) -> Hl7Message:
    return Hl7Message(
        received_at=now,
        peer=peer[:64],
        message_type=received.message_type if received else "",
        control_id=received.control_id[:64] if received else "",
        sending_application=received.sending_application[:64] if received else "",
        sending_facility=received.sending_facility[:64] if received else "",
        raw=raw,
        digest=received.digest if received else "",
        ack_code=str(code),
        ack_text=text[:256],
        dedup_key=key,
    )


def apply_order(
    session: Session,
    fields: OrderFields,
    patient: PatientIdentity,
    now: datetime.datetime,
    batch_orders: dict[str, Order] | None = None,
) -> str:
    number = fields.placer_order_number
    if batch_orders is None:
        order = session.scalar(ORDER_BY_PLACER_NUMBER, {"number": number})
    else:
        order = batch_orders.get(number)
    current = OrderStatus(order.status) if order is not None else None
    try:
        target = status_after_control(current, fields.control)
    except OrderConflict as conflict:
        raise MessageRejected(AckCode.ERROR, f"order {number}: {conflict}") from None
    if order is None:
        order = Order(placer_order_number=number, created_at=now)
        session.add(order)
        if batch_orders is not None:
            batch_orders[number] = order
    if fields.control in (OrderControl.NEW, OrderControl.CHANGE, OrderControl.STATUS_CHANGED):
        copy_order_fields(order, fields, patient)
    if target is not None:
        order.status, order.status_changed_at = str(target), now
    order.updated_at = now
    verb = {
        OrderControl.NEW: "placed" if current is None else "already known, updated",
        OrderControl.CHANGE: "changed",
        OrderControl.STATUS_CHANGED: "updated",
    }.get(fields.control, str(order.status))
    return f"order {number} {verb}"


ORDER_TEXT_LENGTHS = {
    column.name: column.type.length
    for column in Order.__table__.columns
    if isinstance(column.type, String) and column.type.length
}


def copy_order_fields(order: Order, fields: OrderFields, patient: PatientIdentity) -> None:
    values = {
        "filler_order_number": fields.filler_order_number,
        "accession_number": fields.accession_number,
        "requested_procedure_id": fields.requested_procedure_id,
        "scheduled_step_id": fields.scheduled_step_id,
        "study_instance_uid": fields.study_instance_uid,
        "modality": fields.modality,
        "scheduled_station_aet": fields.scheduled_station_aet,
        "scheduled_station_name": fields.scheduled_station_name,
        "procedure_code": fields.procedure_code,
        "procedure_scheme": fields.procedure_scheme,
        "procedure_text": fields.procedure_text,
        "reason": fields.reason,
        "referring_physician": fields.referring_physician,
    }
    for name, value in values.items():
        setattr(order, name, value[: ORDER_TEXT_LENGTHS[name]])
    order.scheduled_at = fields.scheduled_at
    order.ordered_at = fields.ordered_at or order.ordered_at
    order.priority = str(fields.priority)
    copy_patient(order, patient)


def copy_patient(order: Order, patient: PatientIdentity) -> None:
    order.patient_id = patient.patient_id[:64]
    order.patient_id_issuer = patient.issuer[:64]
    order.patient_name = patient.name[:324]
    order.patient_birth_date = patient.birth_date
    order.patient_sex = patient.sex


def update_patient(
    session: Session, patient: PatientIdentity, current_id: str, now: datetime.datetime
) -> int:
    """ADT^A08 (current id = the patient's) and A40 (the merged-away id): every order of
    that patient takes the message's identity."""
    session.flush()  # orders placed earlier in the same batch (which does not autoflush)
    orders = list(session.scalars(select(Order).where(Order.patient_id == current_id)))
    for order in orders:
        copy_patient(order, patient)
        order.updated_at = now
    return len(orders)


def receive_message(database_url: str, raw: bytes, peer: str) -> str:
    """Decode, apply and store one message; the ACK to send back (AA only once committed).

    A message that cannot be read or applied is stored too, with the AR or AE it got.
    """
    now = datetime.datetime.now(datetime.UTC)
    try:
        received = decode_message(raw)
    except MessageRejected as rejection:
        return store_rejection(database_url, rejection.header, raw, peer, now, rejection)
    try:
        with open_session(database_url) as session:
            applied = apply_message(session, received, raw, peer, now)
    except MessageRejected as rejection:
        return store_rejection(database_url, received, raw, peer, now, rejection)
    except IntegrityError:
        # The same message committed meanwhile through another connection.
        with open_session(database_url) as session:
            applied = find_duplicate(session, received) or Applied(
                AckCode.ERROR, "the message could not be stored; send it again"
            )
    except Exception as error:
        log.exception("HL7 message %s from %s not applied", received.control_id, peer)
        rejection = MessageRejected(AckCode.ERROR, f"not applied: {type(error).__name__}")
        return store_rejection(database_url, received, raw, peer, now, rejection)
    return build_ack(received, applied.code, applied.text, now=now)


def receive_messages(database_url: str, messages: Sequence[tuple[bytes, str]]) -> list[str]:
    """Several messages (raw bytes, peer) that arrived together on different connections:
    decoded, applied and stored in one transaction, one commit for all; their ACKs (AA only
    once committed), in order.

    The batch's orders are read in one query before any message is applied, and the session
    flushes once, at the commit (see `apply_message`): an order placed in the batch is seen
    by the messages after it; a repeat of a message is not, and fails the batch at its unique
    key. When one of them cannot be applied (AE), or the transaction fails (a repeat, or a
    twin committed meanwhile by another process), nothing of the batch is kept and each is
    received again on its own, as `receive_message` does.
    """
    if len(messages) == 1:
        return [receive_message(database_url, *messages[0])]
    now = datetime.datetime.now(datetime.UTC)
    decoded = [decode_or_rejection(raw) for raw, _ in messages]
    numbers = {
        fields.placer_order_number
        for item in decoded
        if isinstance(item, ReceivedMessage)
        for fields in item.orders
    }
    try:
        with open_session(database_url) as session, session.no_autoflush:
            orders = find_orders(session, numbers)
            return [
                receive_in_session(session, item, raw, peer, now, orders)
                for item, (raw, peer) in zip(decoded, messages, strict=True)
            ]
    except Exception as error:
        if not isinstance(error, MessageRejected | IntegrityError):
            log.warning("HL7 batch of %d not applied (%r): one by one", len(messages), error)
        return [receive_message(database_url, raw, peer) for raw, peer in messages]


def find_orders(session: Session, numbers: set[str]) -> dict[str, Order]:
    """The orders of these placer numbers that exist, by number."""
    known = list(session.scalars(KNOWN_PLACER_NUMBERS, {"numbers": list(numbers)}))
    if not known:
        return {}
    found = session.scalars(ORDERS_BY_PLACER_NUMBERS, {"numbers": known})
    return {order.placer_order_number: order for order in found}


def decode_or_rejection(raw: bytes) -> ReceivedMessage | MessageRejected:
    try:
        return decode_message(raw)
    except MessageRejected as rejection:
        return rejection


def receive_in_session(
    session: Session,
    item: ReceivedMessage | MessageRejected,
    raw: bytes,
    peer: str,
    now: datetime.datetime,
    batch_orders: dict[str, Order],
) -> str:
    """One message of a batch: a message that cannot be read is kept with its AR; one that
    cannot be applied raises MessageRejected (the batch is received again one by one)."""
    if isinstance(item, MessageRejected):
        session.add(build_message_row(item.header, raw, peer, now, item.code, item.reason))
        return build_ack(item.header, item.code, item.reason, now=now)
    applied = apply_message(session, item, raw, peer, now, batch_orders)
    return build_ack(item, applied.code, applied.text, now=now)


def store_rejection(
    database_url: str,
    received: ReceivedMessage | None,
    raw: bytes,
    peer: str,
    now: datetime.datetime,
    rejection: MessageRejected,
) -> str:
    """Keep a message that was not applied with why; the answer says why too."""
    try:
        with open_session(database_url) as session:
            session.add(
                build_message_row(received, raw, peer, now, rejection.code, rejection.reason)
            )
    except Exception:
        log.exception("HL7 message from %s could not be stored", peer)
        if rejection.code is AckCode.REJECT:
            rejection = MessageRejected(AckCode.ERROR, f"{rejection.reason} (and not stored)")
    return build_ack(received, rejection.code, rejection.reason, now=now)


# -- the Modality Worklist and MPPS ---------------------------------------------------------


def is_registered_modality(
    session: Session, aet: str, host: str, *, check_host: bool = True
) -> bool:
    """A modality may query the worklist and report MPPS when its AE title is registered
    (`pacs modality add`), calling from its registered address unless `check_host` is off."""
    registered = find_modality(session, aet.strip())
    return registered is not None and (not check_host or registered.host == host)


def like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def match_text(column: Any, value: str) -> Any:
    if "*" in value or "?" in value:
        return column.like(like_pattern(value), escape="\\")
    return column == value


def worklist_conditions(query: WorklistQuery) -> list[Any]:
    """Open orders (scheduled or in progress) matching every key given."""
    conditions = [Order.status.in_([str(status) for status in OPEN_STATUSES])]
    if query.modality:
        conditions.append(Order.modality == query.modality.upper())
    if query.station_aet:
        conditions.append(match_text(Order.scheduled_station_aet, query.station_aet))
    if query.date_from:
        conditions.append(
            Order.scheduled_at >= datetime.datetime.combine(query.date_from, datetime.time())
        )
    if query.date_to:
        conditions.append(
            Order.scheduled_at
            < datetime.datetime.combine(query.date_to + datetime.timedelta(days=1), datetime.time())
        )
    if query.patient_id:
        conditions.append(match_text(Order.patient_id, query.patient_id))
    if query.patient_name:
        conditions.append(match_text(Order.patient_name, query.patient_name))
    if query.accession_number:
        conditions.append(match_text(Order.accession_number, query.accession_number))
    return conditions


def find_worklist_orders(
    session: Session, query: WorklistQuery, *, limit: int = 1000
) -> list[Order]:
    """Open orders (scheduled or in progress) matching every key given."""
    return list(
        session.scalars(
            select(Order)
            .where(and_(*worklist_conditions(query)))
            .order_by(Order.scheduled_at, Order.id)
            .limit(limit)
        )
    )


def find_worklist_versions(
    session: Session, query: WorklistQuery, *, limit: int = 1000
) -> list[tuple[int, datetime.datetime]]:
    """(id, updated_at) of the orders `find_worklist_orders` finds, in its order: enough for
    a cache of worklist items, which then loads only the orders it does not hold."""
    rows = session.execute(
        select(Order.id, Order.updated_at)
        .where(and_(*worklist_conditions(query)))
        .order_by(Order.scheduled_at, Order.id)
        .limit(limit)
    )
    return [(order_id, updated_at) for order_id, updated_at in rows]


def load_orders(session: Session, ids: Sequence[int]) -> list[Order]:
    return list(session.scalars(select(Order).where(Order.id.in_(ids)))) if ids else []


class PerformedStepError(LookupError):
    """An MPPS that names no known order, or a step this SCP did not create."""


@dataclass(frozen=True)
class PerformedStep:
    """What an MPPS N-CREATE or N-SET says."""

    sop_instance_uid: str
    status: PerformedStatus | None
    accession_number: str = ""
    scheduled_step_id: str = ""
    study_instance_uid: str = ""
    started_at: datetime.datetime | None = None
    ended_at: datetime.datetime | None = None


def create_performed_step(session: Session, step: PerformedStep, now: datetime.datetime) -> Order:
    """N-CREATE: the modality started the order's exam (by accession, else step id)."""
    if session.scalar(select(Order.id).where(Order.mpps_uid == step.sop_instance_uid)):
        raise PerformedStepError(f"MPPS {step.sop_instance_uid} exists already")
    conditions = []
    if step.accession_number:
        conditions.append(Order.accession_number == step.accession_number)
    if step.scheduled_step_id:
        conditions.append(Order.scheduled_step_id == step.scheduled_step_id)
    order = (
        session.scalar(select(Order).where(or_(*conditions)).order_by(Order.id.desc()))
        if conditions
        else None
    )
    if order is None:
        raise PerformedStepError("no order with this accession number or scheduled step id")
    order.mpps_uid = step.sop_instance_uid
    order.exam_started_at = step.started_at
    apply_performed_status(order, step, now)
    return order


def update_performed_step(session: Session, step: PerformedStep, now: datetime.datetime) -> Order:
    """N-SET: the exam went on (completed, discontinued, or still in progress)."""
    order = session.scalar(select(Order).where(Order.mpps_uid == step.sop_instance_uid))
    if order is None:
        raise PerformedStepError(f"no MPPS {step.sop_instance_uid}")
    if order.status in (OrderStatus.COMPLETED, OrderStatus.DISCONTINUED):
        raise PerformedStepError(f"MPPS {step.sop_instance_uid} is final ({order.status})")
    if step.ended_at is not None:
        order.exam_ended_at = step.ended_at
    apply_performed_status(order, step, now)
    return order


def apply_performed_status(order: Order, step: PerformedStep, now: datetime.datetime) -> None:
    if step.status is None:
        return
    target = MPPS_STATUS[step.status]
    if order.status != target:
        order.status, order.status_changed_at = str(target), now
    if target != OrderStatus.IN_PROGRESS and order.exam_ended_at is None:
        order.exam_ended_at = step.ended_at
    order.updated_at = now


# -- a study meets its order ----------------------------------------------------------------


def find_order_for_study(session: Session, accession: str, study_uid: str) -> Order | None:
    """The order by Accession Number; among several, the one naming this Study Instance UID,
    else the newest not cancelled."""
    if not accession:
        return None
    candidates = list(
        session.scalars(
            select(Order).where(Order.accession_number == accession).order_by(Order.id.desc())
        )
    )
    for order in candidates:
        if order.study_instance_uid and order.study_instance_uid == study_uid:
            return order
    live = [o for o in candidates if o.status != OrderStatus.CANCELLED]
    return (live or candidates or [None])[0]


def save_study_with_order(
    session: Session,
    assessment: Assessment,
    now: datetime.datetime,
    *,
    released: bool = False,
    complete: bool = True,
) -> str:
    """Save the assessed study (storage.studies.save_assessment) after meeting its order:
    identity, referring physician and priority come from the order, contradictions become
    findings (a wrong patient quarantines it), and the order is linked to the study."""
    record = assessment.record
    order = find_order_for_study(session, record.accession_number, record.study_instance_uid)
    if order is None:
        return save_assessment(session, assessment, now, complete=complete)
    ordered = OrderedIdentity(
        patient_id=order.patient_id,
        patient_name=order.patient_name,
        patient_birth_date=order.patient_birth_date,
        study_instance_uid=order.study_instance_uid,
    )
    findings = compare_with_order(
        ordered,
        patient_id=record.patient_id,
        patient_name=record.patient_name,
        patient_birth_date=record.patient_birth_date,
        study_instance_uid=record.study_instance_uid,
    )
    if released:
        findings = [override_error(finding) for finding in findings]
    assessment = dataclasses.replace(assessment, findings=(*assessment.findings, *findings))
    wrong_patient = any(finding.code == "ORDER_PATIENT_MISMATCH" for finding in findings)
    # Released by an admin despite another patient's order: the images keep their identity.
    if not assessment.quarantined and not wrong_patient:
        assessment = dataclasses.replace(
            assessment,
            record=dataclasses.replace(
                record,
                patient_id=order.patient_id or record.patient_id,
                patient_name=order.patient_name or record.patient_name,
                patient_birth_date=order.patient_birth_date or record.patient_birth_date,
                patient_sex=order.patient_sex or record.patient_sex,
                referring_physician=order.referring_physician or record.referring_physician,
                priority=Priority(order.priority),
                ordered_at=order.ordered_at or record.ordered_at,
            ),
        )
    outcome = save_assessment(session, assessment, now, complete=complete)
    if outcome != "quarantined":
        link_order(session, order, record.orthanc_id, record.study_datetime, now)
    return outcome


def link_order(
    session: Session,
    order: Order,
    orthanc_id: str,
    study_datetime: datetime.datetime | None,
    now: datetime.datetime,
) -> None:
    """The order has its study: performed, unless an MPPS says how it went."""
    session.flush()
    order.study_id = session.scalar(select(Study.id).where(Study.orthanc_id == orthanc_id))
    if order.status in (OrderStatus.SCHEDULED, OrderStatus.IN_PROGRESS) and order.mpps_uid is None:
        order.status, order.status_changed_at = str(OrderStatus.COMPLETED), now
        order.exam_started_at = order.exam_started_at or study_datetime
    order.updated_at = now


def find_study_order(session: Session, study_id: int) -> Order | None:
    return session.scalar(select(Order).where(Order.study_id == study_id).order_by(Order.id.desc()))


def list_orders_without_studies(session: Session, *, limit: int = 200) -> list[Order]:
    """Orders still waiting for their images (cancelled ones aside), oldest scheduled first."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.study_id.is_(None), Order.status != OrderStatus.CANCELLED)
            .order_by(Order.scheduled_at, Order.id)
            .limit(limit)
        )
    )


def list_studies_without_orders(session: Session, *, limit: int = 200) -> list[Study]:
    """Studies on the worklist that no order claims, newest first."""
    ordered = select(Order.study_id).where(Order.study_id.is_not(None))
    return list(
        session.scalars(
            select(Study)
            .where(Study.id.not_in(ordered), Study.status != "removed")
            .order_by(Study.received_at.desc())
            .limit(limit)
        )
    )
