"""HL7 v2 messages in and out: decoding, reading orders and patient updates, ACK and ORU^R01.

Parsing is python-hl7's (`hl7.parse` and its field accessors); this module only says
which field means what, following IHE Radiology's Scheduled Workflow (ORC/OBR for
ORM^O01, plus TQ1 and IPC for OMI^O23) and dcm4chee-arc's mapping of the rest.
Pure functions: no sockets, no database.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum

import hl7

from core.records import Priority

# Escaping (|, ^, ~, \\, & inside values) as python-hl7 does it for the standard separators.
ESCAPER = hl7.parse("MSH|^~\\&|")


# Runs of characters the library would write as single-byte hex escapes.
BEYOND_ASCII = re.compile("([\x7f-\U0010ffff]+)")


def escape(text: str) -> str:
    """A value for a field: separators escaped by python-hl7; letters beyond ASCII kept as
    they are (the message is UTF-8), where the library would write single-byte hex escapes.
    The library is called once a run of ASCII, not once a character (every ACK's fields)."""
    parts = BEYOND_ASCII.split(text)  # odd indexes: the runs beyond ASCII
    return "".join(part if index % 2 else ESCAPER.escape(part) for index, part in enumerate(parts))


SUPPORTED_TYPES = frozenset({"ORM^O01", "OMI^O23", "ADT^A08", "ADT^A40"})

# MSH-18 character sets (HL7 table 0211) and Python's codec for each. Unnamed: UTF-8,
# which reads every ASCII message as well.
CHARSETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
}

# Quantity/timing priority (TQ1-9, OBR-27.6, ORC-7.6; HL7 table 0027) -> the worklist's levels.
HL7_PRIORITIES = {
    "S": Priority.STAT,
    "A": Priority.URGENT,
    "T": Priority.URGENT,
    "R": Priority.ROUTINE,
    "P": Priority.ROUTINE,
    "C": Priority.ROUTINE,
}


class AckCode(StrEnum):
    ACCEPT = "AA"
    ERROR = "AE"  # understood, but could not be applied (content, unknown order, database)
    REJECT = "AR"  # not acceptable as a message (framing, syntax, type, encoding)


class MessageRejected(ValueError):
    """The message cannot be taken: `code` says whether to answer AR or AE, the text why."""

    def __init__(self, code: AckCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.header: ReceivedMessage | None = None


class OrderControl(StrEnum):
    """ORC-1 values the department acts on (HL7 table 0119)."""

    NEW = "NW"
    CHANGE = "XO"
    CANCEL = "CA"
    DISCONTINUE = "DC"
    HOLD = "HD"
    RELEASE = "RL"
    STATUS_CHANGED = "SC"


@dataclass(frozen=True)
class PatientIdentity:
    patient_id: str
    issuer: str = ""
    name: str = ""  # DICOM PN: Family^Given^Middle^Prefix^Suffix
    birth_date: datetime.date | None = None
    sex: str = ""


@dataclass(frozen=True)
class OrderFields:
    """What one ORC group (ORC with its OBR, TQ1, IPC, ZDS) says about one order."""

    control: OrderControl
    placer_order_number: str
    filler_order_number: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    scheduled_step_id: str = ""
    study_instance_uid: str = ""
    modality: str = ""
    scheduled_station_aet: str = ""
    scheduled_station_name: str = ""
    scheduled_at: datetime.datetime | None = None  # the department's wall clock
    ordered_at: datetime.datetime | None = None
    procedure_code: str = ""
    procedure_scheme: str = ""
    procedure_text: str = ""
    priority: Priority = Priority.ROUTINE
    reason: str = ""
    referring_physician: str = ""  # DICOM PN


@dataclass(frozen=True)
class ReceivedMessage:
    """A decoded message, with what the listener needs to store, answer and apply it."""

    text: str
    message: hl7.Message
    message_type: str  # ORM^O01
    control_id: str
    sending_application: str
    sending_facility: str
    patient: PatientIdentity | None = None
    orders: tuple[OrderFields, ...] = ()
    prior_patient_id: str = ""  # ADT^A40: the identifier merged away

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def decode_message(raw: bytes) -> ReceivedMessage:
    """Decode and read one framed message; raises MessageRejected with the ACK code, why,
    and the header when it could be read (so that the answer names the message)."""
    if not raw.strip():
        raise MessageRejected(AckCode.REJECT, "empty message")
    # The header alone first, decoded byte for byte (Latin-1 maps every byte): its MSH-18
    # says how to decode the whole message.
    first_segment = raw.replace(b"\n", b"\r").split(b"\r", 1)[0].decode("latin-1")
    provisional = parse_text(first_segment)
    header = read_header(provisional, raw.decode("latin-1"))
    try:
        charset = read_field(provisional.segment("MSH"), 18).strip().upper()
        codec = CHARSETS.get(charset)
        if codec is None:
            raise MessageRejected(AckCode.REJECT, f"unsupported character set MSH-18 {charset!r}")
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError as error:
            raise MessageRejected(
                AckCode.REJECT,
                f"the bytes are not {charset or 'UTF-8'} as MSH-18 declares "
                f"(byte {error.start}: {raw[error.start : error.start + 1].hex()})",
            ) from None
        header = read_header(parse_text(text), text)
        if not header.control_id:
            raise MessageRejected(AckCode.REJECT, "MSH-10 message control id is empty")
        if header.message_type not in SUPPORTED_TYPES:
            supported = ", ".join(sorted(SUPPORTED_TYPES))
            raise MessageRejected(
                AckCode.REJECT,
                f"unsupported message type {header.message_type or '(none)'}: {supported}",
            )
        return read_content(header)
    except MessageRejected as rejection:
        rejection.header = header
        raise


def read_header_or_none(raw: bytes) -> ReceivedMessage | None:
    """The header of what may be a piece of a message, to name it in the answer."""
    text = raw.decode("latin-1")
    try:
        return read_header(parse_text(text), text)
    except MessageRejected:
        return None


def read_header(message: hl7.Message, text: str) -> ReceivedMessage:
    msh = message.segment("MSH")
    message_type = "^".join(
        part for part in (read_field(msh, 9, 1), read_field(msh, 9, 2)) if part
    ).upper()
    return ReceivedMessage(
        text=text,
        message=message,
        message_type=message_type[:16],
        control_id=read_field(msh, 10)[:64],
        sending_application=read_field(msh, 3)[:64],
        sending_facility=read_field(msh, 4)[:64],
    )


def parse_text(text: str) -> hl7.Message:
    # Files and some senders end segments with LF or CRLF; MLLP's own separator is CR.
    normalized = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r\n\x00 ")
    if not normalized.startswith("MSH") or len(normalized) < 8:
        raise MessageRejected(AckCode.REJECT, "malformed message: it does not start with MSH")
    try:
        message = hl7.parse(normalized)
        message.segment("MSH")
    except (ValueError, KeyError, IndexError) as error:
        raise MessageRejected(AckCode.REJECT, f"malformed message: {error}") from None
    return message


def read_field(segment: hl7.Segment, number: int, component: int = 1, repeat: int = 1) -> str:
    """A field's component as text ('' when absent), through the library's accessor."""
    try:
        value = segment.extract_field(1, number, repeat, component, 1)
    except (IndexError, KeyError):
        return ""
    return str(value).strip()


def read_content(received: ReceivedMessage) -> ReceivedMessage:
    message = received.message
    pid = find_segment(message, "PID")
    if pid is None:
        raise MessageRejected(AckCode.ERROR, "PID segment missing")
    patient = read_patient(pid)
    if received.message_type.startswith("ADT"):
        prior = ""
        if received.message_type == "ADT^A40":
            mrg = find_segment(message, "MRG")
            prior = read_field(mrg, 1) if mrg is not None else ""
            if not prior:
                raise MessageRejected(AckCode.ERROR, "ADT^A40 without MRG-1 prior patient id")
        return dataclasses.replace(received, patient=patient, prior_patient_id=prior)
    pv1 = find_segment(message, "PV1")
    referring = person_name(pv1, 8, offset=1) if pv1 is not None else ""
    orders = tuple(read_order(group, referring) for group in group_orders(message))
    if not orders:
        raise MessageRejected(AckCode.ERROR, "no ORC segment: the message carries no order")
    return dataclasses.replace(received, patient=patient, orders=orders)


def find_segment(message: hl7.Message, name: str) -> hl7.Segment | None:
    found = [segment for segment in message if str(segment[0]) == name]
    return found[0] if found else None


def group_orders(message: hl7.Message) -> list[dict[str, hl7.Segment]]:
    """Each ORC with the OBR, TQ1, IPC and ZDS segments that follow it (first of each)."""
    groups: list[dict[str, hl7.Segment]] = []
    for segment in message:
        name = str(segment[0])
        if name == "ORC":
            groups.append({"ORC": segment})
        elif groups and name in ("OBR", "TQ1", "IPC", "ZDS"):
            groups[-1].setdefault(name, segment)
    return groups


def read_patient(pid: hl7.Segment) -> PatientIdentity:
    patient_id = read_field(pid, 3, 1)
    if not patient_id:
        raise MessageRejected(AckCode.ERROR, "PID-3 patient identifier is empty")
    return PatientIdentity(
        patient_id=patient_id,
        issuer=read_field(pid, 3, 4),
        name=person_name(pid, 5, offset=0),
        birth_date=parse_hl7_date(read_field(pid, 7)),
        sex=read_field(pid, 8).upper()[:1] if read_field(pid, 8).upper()[:1] in "MFO" else "",
    )


def person_name(segment: hl7.Segment, number: int, *, offset: int) -> str:
    """An XPN (offset 0) or XCN (offset 1: an id first) as a DICOM PN.

    HL7 orders them family, given, middle, suffix, prefix; DICOM family, given, middle,
    prefix, suffix.
    """
    family, given, middle, suffix, prefix = (
        read_field(segment, number, offset + index) for index in range(1, 6)
    )
    parts = [family, given, middle, prefix, suffix]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def read_order(group: dict[str, hl7.Segment], visit_referring: str) -> OrderFields:
    orc = group["ORC"]
    obr = group.get("OBR")
    tq1 = group.get("TQ1")
    ipc = group.get("IPC")
    zds = group.get("ZDS")
    raw_control = read_field(orc, 1).upper()
    try:
        control = OrderControl(raw_control)
    except ValueError:
        raise MessageRejected(
            AckCode.ERROR, f"ORC-1 order control {raw_control or '(empty)'} is not supported"
        ) from None

    def pick(*values: str) -> str:
        return next((value for value in values if value), "")

    def from_obr(number: int, component: int = 1) -> str:
        return read_field(obr, number, component) if obr is not None else ""

    def from_ipc(number: int, component: int = 1) -> str:
        return read_field(ipc, number, component) if ipc is not None else ""

    placer = pick(read_field(orc, 2), from_obr(2))
    if not placer:
        raise MessageRejected(AckCode.ERROR, "ORC-2/OBR-2 placer order number is empty")
    priority_code = pick(
        read_field(tq1, 9) if tq1 is not None else "",
        from_obr(27, 6),
        read_field(orc, 7, 6),
        from_obr(5),
    ).upper()
    scheduled = pick(
        read_field(tq1, 7) if tq1 is not None else "", from_obr(27, 4), from_obr(36), from_obr(6)
    )
    referring = (
        person_name(orc, 12, offset=1)
        or (person_name(obr, 16, offset=1) if obr is not None else "")
        or visit_referring
    )
    return OrderFields(
        control=control,
        placer_order_number=placer,
        filler_order_number=pick(read_field(orc, 3), from_obr(3)),
        accession_number=pick(from_ipc(1), from_obr(18)),
        requested_procedure_id=pick(from_ipc(2), from_obr(19)),
        scheduled_step_id=pick(from_ipc(4), from_obr(20)),
        study_instance_uid=pick(from_ipc(3), read_field(zds, 1) if zds is not None else ""),
        modality=pick(from_ipc(5), from_obr(24)).upper(),
        scheduled_station_aet=pick(from_ipc(9), from_obr(21)),
        scheduled_station_name=from_ipc(7),
        scheduled_at=parse_hl7_datetime(scheduled),
        ordered_at=parse_hl7_datetime(pick(read_field(orc, 9), from_obr(6))),
        procedure_code=pick(from_obr(44), from_obr(4)),
        procedure_scheme=pick(from_obr(44, 3), from_obr(4, 3)),
        procedure_text=pick(from_obr(44, 2), from_obr(4, 2)),
        priority=HL7_PRIORITIES.get(priority_code[:1], Priority.ROUTINE),
        reason=pick(from_obr(31, 2), from_obr(31), from_obr(13)),
        referring_physician=referring,
    )


def parse_hl7_date(text: str) -> datetime.date | None:
    value = parse_hl7_datetime(text)
    return value.date() if value else None


def parse_hl7_datetime(text: str) -> datetime.datetime | None:
    """A TS/DTM as the department's wall clock (naive, like DICOM's); None when unreadable.

    An explicit offset is dropped with the time kept as written: HIS and modality share a clock.
    """
    if not text:
        return None
    try:
        value = hl7.parse_datetime(text)
    except (ValueError, TypeError):
        return None
    return value.replace(tzinfo=None) if value else None


def format_hl7_datetime(value: datetime.datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S")


# -- answers -----------------------------------------------------------------------------


def build_ack(
    received: ReceivedMessage | None,
    code: AckCode,
    text: str,
    *,
    now: datetime.datetime,
    application: str = "PACS",
) -> str:
    """MSH + MSA (+ ERR when not accepted), segments ended by CR; MSA-3 says why."""
    if received is not None:
        msh = received.message.segment("MSH")
        receiver_app, receiver_facility = received.sending_application, received.sending_facility
        trigger = read_field(msh, 9, 2)
        version = read_field(msh, 12) or "2.5"
        control_id = received.control_id
        processing = read_field(msh, 11) or "P"
    else:
        receiver_app = receiver_facility = trigger = control_id = ""
        version, processing = "2.5", "P"
    reason = escape(text[:200])
    segments = [
        "|".join(
            [
                "MSH",
                "^~\\&",
                escape(application),
                "",
                escape(receiver_app),
                escape(receiver_facility),
                format_hl7_datetime(now),
                "",
                f"ACK^{escape(trigger)}^ACK",
                ack_control_id(control_id, now),
                escape(processing),
                escape(version),
            ]
        ),
        f"MSA|{code}|{escape(control_id)}|{reason}",
    ]
    if code is not AckCode.ACCEPT:
        hl7_code = "200" if code is AckCode.REJECT else "207"  # unsupported / application error
        segments.append(f"ERR||||E|{hl7_code}||{reason}")
    return "\r".join(segments) + "\r"


def ack_control_id(control_id: str, now: datetime.datetime) -> str:
    digest = hashlib.sha1(f"{control_id}{now.isoformat()}".encode()).hexdigest()[:12]
    return f"ACK{digest}"


@dataclass(frozen=True)
class Acknowledgement:
    code: str
    control_id: str
    text: str


def read_ack(raw: bytes) -> Acknowledgement:
    """MSA-1, MSA-2 and MSA-3 of an ACK received; raises MessageRejected when it is none."""
    message = parse_text(raw.decode("utf-8", errors="replace"))
    msa = find_segment(message, "MSA")
    if msa is None:
        raise MessageRejected(AckCode.REJECT, "the answer has no MSA segment")
    return Acknowledgement(
        code=read_field(msa, 1).upper(), control_id=read_field(msa, 2), text=read_field(msa, 3)
    )


@dataclass(frozen=True)
class ResultReport:
    """What an ORU^R01 carries: the order it answers and the signed report's text."""

    control_id: str
    patient: PatientIdentity
    placer_order_number: str
    filler_order_number: str
    accession_number: str
    procedure_code: str
    procedure_text: str
    procedure_scheme: str
    study_instance_uid: str
    kind: str  # final, addendum
    signed_at: datetime.datetime  # the department's wall clock
    signer_name: str  # DICOM PN
    sections: tuple[tuple[str, str], ...] = field(default=())  # (title, text)


def build_oru(report: ResultReport, *, now: datetime.datetime, facility: str = "") -> str:
    """ORU^R01 (v2.5.1): MSH, PID, ORC (RE), OBR (status F, or C for an addendum), one TX
    OBX per line of each section."""
    status = "C" if report.kind == "addendum" else "F"
    msh = (
        f"MSH|^~\\&|PACS|{escape(facility)}|||{format_hl7_datetime(now)}||ORU^R01^ORU_R01|"
        f"{escape(report.control_id)}|P|2.5.1||||||UNICODE UTF-8"
    )
    patient = report.patient
    signer_family, signer_given = ([*report.signer_name.split("^"), "", ""])[:2]
    pid = build_segment(
        "PID",
        {
            1: "1",
            3: f"{escape(patient.patient_id)}^^^{escape(patient.issuer)}",
            5: xpn(patient.name),
            7: patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
            8: patient.sex,
        },
    )
    orc = build_segment(
        "ORC",
        {
            1: "RE",
            2: escape(report.placer_order_number),
            3: escape(report.filler_order_number),
            5: "CM",
        },
    )
    obr = build_segment(
        "OBR",
        {
            1: "1",
            2: escape(report.placer_order_number),
            3: escape(report.filler_order_number),
            4: "^".join(
                escape(value)
                for value in (report.procedure_code, report.procedure_text, report.procedure_scheme)
            ),
            18: escape(report.accession_number),
            22: format_hl7_datetime(report.signed_at),
            25: status,
            32: f"&{escape(signer_family)}&{escape(signer_given)}",
        },
    )
    segments = [msh, pid, orc, obr]
    if report.study_instance_uid:
        segments.append(f"ZDS|{escape(report.study_instance_uid)}^^Application^DICOM")
    number = 0
    for title, text in report.sections:
        for line in [title.upper() + ":", *text.splitlines()]:
            number += 1
            segments.append(f"OBX|{number}|TX|{escape(title)}||{escape(line)}||||||{status}")
    return "\r".join(segments) + "\r"


# -- orders out (the demo generator, tests and benchmarks place orders like a HIS) ----------

PRIORITY_CODES = {Priority.STAT: "S", Priority.URGENT: "A", Priority.ROUTINE: "R"}


def build_segment(name: str, fields: dict[int, str]) -> str:
    """A segment from its fields by number (values already escaped)."""
    values = [""] * (max(fields, default=0) + 1)
    values[0] = name
    for number, value in fields.items():
        values[number] = value
    return "|".join(values)


def xpn(name: str) -> str:
    """A DICOM PN (family^given^middle^prefix^suffix) as an HL7 XPN (..^suffix^prefix)."""
    family, given, middle, prefix, suffix = ([*name.split("^"), "", "", "", ""])[:5]
    return "^".join(escape(p) for p in (family, given, middle, suffix, prefix)).rstrip("^")


def build_order_message(
    fields: OrderFields,
    patient: PatientIdentity,
    *,
    control_id: str,
    now: datetime.datetime,
    message_type: str = "ORM^O01",
    sending_application: str = "HIS",
    sending_facility: str = "HOSPITAL",
) -> str:
    """An ORM^O01 (or OMI^O23 with TQ1 and IPC) placing or changing one order, as a HIS sends it."""
    scheduled = format_hl7_datetime(fields.scheduled_at) if fields.scheduled_at else ""
    priority = PRIORITY_CODES[fields.priority]
    procedure = "^".join(
        escape(value)
        for value in (fields.procedure_code, fields.procedure_text, fields.procedure_scheme)
    )
    referring = "^" + xpn(fields.referring_physician) if fields.referring_physician else ""
    omi = message_type == "OMI^O23"
    segments = [
        build_segment(
            "MSH",
            {
                1: "^~\\&",
                2: escape(sending_application),
                3: escape(sending_facility),
                4: "PACS",
                5: "RADIOLOGY",
                6: format_hl7_datetime(now),
                8: message_type + ("^OMI_O23" if omi else ""),
                9: escape(control_id),
                10: "P",
                11: "2.5.1" if omi else "2.3",
                17: "UNICODE UTF-8",
            },
        ),
        build_segment(
            "PID",
            {
                1: "1",
                3: f"{escape(patient.patient_id)}^^^{escape(patient.issuer)}^MR",
                5: xpn(patient.name),
                7: patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
                8: patient.sex,
            },
        ),
        build_segment("PV1", {1: "1", 2: "O", 8: referring}),
        build_segment(
            "ORC",
            {
                1: str(fields.control),
                2: escape(fields.placer_order_number),
                3: escape(fields.filler_order_number),
                5: "SC",
                7: "" if omi else f"^^^{scheduled}^^{priority}",
                9: format_hl7_datetime(fields.ordered_at) if fields.ordered_at else "",
                12: referring,
            },
        ),
    ]
    if omi:
        segments.append(build_segment("TQ1", {1: "1", 7: scheduled, 9: priority}))
    segments.append(
        build_segment(
            "OBR",
            {
                1: "1",
                2: escape(fields.placer_order_number),
                3: escape(fields.filler_order_number),
                4: procedure,
                16: referring,
                18: "" if omi else escape(fields.accession_number),
                19: "" if omi else escape(fields.requested_procedure_id),
                20: "" if omi else escape(fields.scheduled_step_id),
                21: "" if omi else escape(fields.scheduled_station_aet),
                24: "" if omi else escape(fields.modality),
                27: "" if omi else f"^^^{scheduled}^^{priority}",
                31: f"^{escape(fields.reason)}" if fields.reason else "",
                44: procedure,
            },
        )
    )
    if omi:
        segments.append(
            build_segment(
                "IPC",
                {
                    1: escape(fields.accession_number),
                    2: escape(fields.requested_procedure_id),
                    3: escape(fields.study_instance_uid),
                    4: escape(fields.scheduled_step_id),
                    5: escape(fields.modality),
                    7: escape(fields.scheduled_station_name),
                    9: escape(fields.scheduled_station_aet),
                },
            )
        )
    elif fields.study_instance_uid:
        segments.append(f"ZDS|{escape(fields.study_instance_uid)}^^Application^DICOM")
    return "\r".join(segments) + "\r"


def build_patient_message(
    message_type: str,
    patient: PatientIdentity,
    *,
    control_id: str,
    now: datetime.datetime,
    prior_patient_id: str = "",
) -> str:
    """ADT^A08 (update) or ADT^A40 (merge `prior_patient_id` into the patient)."""
    segments = [
        build_segment(
            "MSH",
            {
                1: "^~\\&",
                2: "HIS",
                3: "HOSPITAL",
                4: "PACS",
                5: "RADIOLOGY",
                6: format_hl7_datetime(now),
                8: message_type,
                9: escape(control_id),
                10: "P",
                11: "2.5",
                17: "UNICODE UTF-8",
            },
        ),
        f"EVN|{message_type.split('^')[1]}|{format_hl7_datetime(now)}",
        build_segment(
            "PID",
            {
                1: "1",
                3: f"{escape(patient.patient_id)}^^^{escape(patient.issuer)}^MR",
                5: xpn(patient.name),
                7: patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
                8: patient.sex,
            },
        ),
    ]
    if prior_patient_id:
        segments.append(f"MRG|{escape(prior_patient_id)}")
    return "\r".join(segments) + "\r"
