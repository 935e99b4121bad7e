"""The modality-services SCP: `findscu -W` from a registered modality finds today's CT orders
for its station, an unregistered AE is refused; MPPS moves an order through its states."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityWorklistInformationFind
from sqlalchemy import select

from core.hl7_messages import OrderControl, PatientIdentity
from core.modalities import Modality
from core.records import Priority
from pacs.modality_services import ModalityServices
from storage.database import get_engine, open_session
from storage.modalities import ensure_modality
from storage.models.orders import Order
from storage.orders import receive_message
from tests.support.databases import new_database
from tests.support.orders import make_order, order_message
from tests.support.tools import require_tool

TODAY = datetime.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
FINDSCU = shutil.which("findscu")
DUMP2DCM = shutil.which("dump2dcm")


def require_dcmtk() -> None:
    require_tool("findscu")
    require_tool("dump2dcm")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = new_database(tmp_path / "pacs.sqlite3")
    get_engine(url)
    ordered = [
        make_order(1, scheduled_at=TODAY.replace(hour=9), priority=Priority.STAT),
        make_order(2, scheduled_at=TODAY.replace(hour=14)),
        make_order(3, scheduled_at=TODAY.replace(hour=10), scheduled_station_aet="CT02"),
        make_order(4, scheduled_at=TODAY.replace(hour=11), modality="MR"),
        make_order(5, scheduled_at=TODAY + datetime.timedelta(days=1)),
        make_order(6, scheduled_at=TODAY.replace(hour=12)),
    ]
    other = PatientIdentity("P200", "HOSP", "Łukasiewicz^Zofia", datetime.date(1990, 3, 4), "F")
    for fields in ordered:
        patient = other if fields.placer_order_number == "PO2" else None
        message = order_message(fields, patient) if patient else order_message(fields)
        assert b"MSA|AA" in receive_message(url, message, "test").encode()
    cancel = order_message(make_order(6, control=OrderControl.CANCEL))
    assert "MSA|AA" in receive_message(url, cancel, "test")
    with open_session(url) as session:
        now = datetime.datetime.now(datetime.UTC)
        ensure_modality(session, Modality("CTSCANNER", "127.0.0.1", 11112), now)
        ensure_modality(session, Modality("FARAWAY", "10.1.2.3", 11112), now)
    return url


@pytest.fixture
def services(database_url: str) -> Iterator[ModalityServices]:
    server = ModalityServices(database_url, "PACSMWL", "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


def write_query(path: Path, day: datetime.datetime) -> Path:
    dump = path / "query.dump"
    dump.write_text(
        "\n".join(
            [
                "(0008,0005) CS [ISO_IR 192]",
                "(0008,0050) SH []",
                "(0010,0010) PN []",
                "(0010,0020) LO []",
                "(0040,1001) SH []",
                "(0040,1003) SH []",
                "(0040,0100) SQ (Sequence with explicit length #=1)",
                "  (fffe,e000) na (Item with explicit length #=4)",
                "    (0008,0060) CS [CT]",
                "    (0040,0001) AE [CT01]",
                f"    (0040,0002) DA [{day:%Y%m%d}]",
                "    (0040,0009) SH []",
                "  (fffe,e00d) na (ItemDelimitationItem for re-encoding)",
                "(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)",
            ]
        )
        + "\n"
    )
    query = path / "query.dcm"
    subprocess.run([DUMP2DCM, str(dump), str(query)], check=True, timeout=30)
    return query


def run_findscu(
    services: ModalityServices, calling: str, query: Path, out: Path
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            FINDSCU,
            "-W",
            "-X",
            "-od",
            str(out),
            "-aet",
            calling,
            "-aec",
            "PACSMWL",
            "127.0.0.1",
            str(services.port),
            str(query),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_findscu_from_a_registered_modality_finds_todays_ct_orders_for_its_station(
    services, tmp_path
) -> None:
    require_dcmtk()
    out = tmp_path / "answers"
    out.mkdir()
    result = run_findscu(services, "CTSCANNER", write_query(tmp_path, TODAY), out)
    assert result.returncode == 0, result.stdout + result.stderr
    answers = [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]
    assert sorted(a.AccessionNumber for a in answers) == ["ACC1", "ACC2"]
    first = next(a for a in answers if a.AccessionNumber == "ACC1")
    assert first.RequestedProcedurePriority == "STAT"
    assert first.PatientID == "P100"
    step = first.ScheduledProcedureStepSequence[0]
    assert (step.Modality, step.ScheduledStationAETitle, step.ScheduledProcedureStepID) == (
        "CT",
        "CT01",
        "SPS1",
    )
    second = next(a for a in answers if a.AccessionNumber == "ACC2")
    assert str(second.PatientName) == "Łukasiewicz^Zofia"  # UTF-8 all the way


def test_an_unregistered_ae_is_refused(services, tmp_path) -> None:
    require_dcmtk()
    out = tmp_path / "answers"
    out.mkdir()
    result = run_findscu(services, "INTRUDER", write_query(tmp_path, TODAY), out)
    assert result.returncode != 0
    assert "Rejected" in result.stdout + result.stderr
    assert list(out.glob("rsp*.dcm")) == []


def send_find(
    services: ModalityServices, calling: str, query: Dataset, syntax: str | None = None
) -> list[tuple[Dataset, Dataset | None]]:
    """One worklist C-FIND from `calling` (over `syntax` alone, when given): its answers."""
    ae = AE(calling)
    syntaxes = [syntax] if syntax else DEFAULT_TRANSFER_SYNTAXES
    ae.add_requested_context(ModalityWorklistInformationFind, syntaxes)
    assoc = ae.associate("127.0.0.1", services.port, ae_title="PACSMWL")
    assert assoc.is_established
    try:
        return list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    finally:
        assoc.release()


def find_with_pynetdicom(services: ModalityServices, calling: str) -> list[int]:
    query = Dataset()
    query.AccessionNumber = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    query.ScheduledProcedureStepSequence[0].Modality = "CT"
    return [status.Status for status, _ in send_find(services, calling, query)]


def test_a_registered_title_from_another_address_is_refused(services) -> None:
    assert find_with_pynetdicom(services, "FARAWAY") == [0x0124]


def test_a_wildcard_and_accession_query(services) -> None:
    statuses = find_with_pynetdicom(services, "CTSCANNER")
    # Open CT orders: 1, 2, 3 (CT02) and 5 (tomorrow); 6 was cancelled.
    assert statuses == [0xFF00] * 4 + [0x0000]


def find_answers(services: ModalityServices, syntax: str, keys: tuple[str, ...]) -> list[Dataset]:
    """Today's CT01 orders as a registered modality asks over one transfer syntax for `keys`."""
    query = Dataset()
    for keyword in keys:
        setattr(query, keyword, "")
    step = Dataset()
    step.ScheduledStationAETitle = "CT01"
    step.ScheduledProcedureStepStartDate = TODAY.strftime("%Y%m%d")
    query.ScheduledProcedureStepSequence = [step]
    answers = send_find(services, "CTSCANNER", query, syntax)
    assert answers[-1][0].Status == 0x0000
    return [identifier for _, identifier in answers[:-1]]


def test_cached_answers_follow_the_transfer_syntax_the_keys_and_the_orders_version(
    services, database_url
) -> None:
    """Answers are kept encoded: another transfer syntax, other requested keys or a changed
    order must never be given bytes made for the first query."""
    keys = ("AccessionNumber", "PatientName")
    implicit = find_answers(services, ImplicitVRLittleEndian, keys)
    explicit = find_answers(services, ExplicitVRLittleEndian, keys)
    big = find_answers(services, ExplicitVRBigEndian, keys)
    first = sorted((str(a.AccessionNumber), str(a.PatientName)) for a in implicit)
    assert first and first == sorted((str(a.AccessionNumber), str(a.PatientName)) for a in big)
    assert first == sorted((str(a.AccessionNumber), str(a.PatientName)) for a in explicit)
    assert "Łukasiewicz^Zofia" in {name for _, name in first}  # UTF-8 survives every syntax
    fewer = find_answers(services, ImplicitVRLittleEndian, ("AccessionNumber",))
    assert fewer and all("PatientName" not in answer for answer in fewer)
    # The order changes (a new version): the next query answers with the new name.
    renamed = PatientIdentity("P200", "HOSP", "Nowak^Anna", datetime.date(1990, 3, 4), "F")
    change = order_message(
        make_order(2, control=OrderControl.CHANGE, scheduled_at=TODAY.replace(hour=14)),
        renamed,
        control_id="CH2",
    )
    assert "MSA|AA" in receive_message(database_url, change, "test")
    again = find_answers(services, ImplicitVRLittleEndian, keys)
    assert {str(a.PatientName) for a in again} >= {"Nowak^Anna"}
    assert "Łukasiewicz^Zofia" not in {str(a.PatientName) for a in again}


def mpps_create(assoc, uid: str, accession: str) -> int:
    attributes = Dataset()
    reference = Dataset()
    reference.AccessionNumber = accession
    reference.ScheduledProcedureStepID = ""
    reference.StudyInstanceUID = generate_uid()
    attributes.ScheduledStepAttributesSequence = [reference]
    attributes.PatientID = "P100"
    attributes.PerformedProcedureStepStatus = "IN PROGRESS"
    attributes.PerformedProcedureStepStartDate = TODAY.strftime("%Y%m%d")
    attributes.PerformedProcedureStepStartTime = "091500"
    attributes.Modality = "CT"
    status, _ = assoc.send_n_create(attributes, ModalityPerformedProcedureStep, uid)
    return status.Status


def mpps_set(assoc, uid: str, state: str) -> int:
    changes = Dataset()
    changes.PerformedProcedureStepStatus = state
    changes.PerformedProcedureStepEndDate = TODAY.strftime("%Y%m%d")
    changes.PerformedProcedureStepEndTime = "093000"
    status, _ = assoc.send_n_set(changes, ModalityPerformedProcedureStep, uid)
    return status.Status


def load_order(database_url: str, placer: str) -> Order:
    with open_session(database_url) as session:
        return session.scalar(select(Order).where(Order.placer_order_number == placer))


def test_mpps_moves_orders_through_their_states(services, database_url) -> None:
    ae = AE("CTSCANNER")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", services.port, ae_title="PACSMWL")
    assert assoc.is_established
    try:
        first, second = generate_uid(), generate_uid()
        assert mpps_create(assoc, first, "ACC1") == 0x0000
        order = load_order(database_url, "PO1")
        assert order.status == "in_progress"
        assert order.exam_started_at == TODAY.replace(hour=9, minute=15)
        assert mpps_create(assoc, first, "ACC1") == 0x0111  # the same step twice
        assert mpps_set(assoc, first, "COMPLETED") == 0x0000
        order = load_order(database_url, "PO1")
        assert order.status == "completed"
        assert order.exam_ended_at == TODAY.replace(hour=9, minute=30)
        assert mpps_set(assoc, first, "IN PROGRESS") == 0x0110  # a final step stays final

        assert mpps_create(assoc, second, "ACC2") == 0x0000
        assert mpps_set(assoc, second, "DISCONTINUED") == 0x0000
        assert load_order(database_url, "PO2").status == "discontinued"

        assert mpps_create(assoc, generate_uid(), "NO-SUCH-ACC") == 0x0110
        assert mpps_set(assoc, generate_uid(), "COMPLETED") == 0x0112
        assert mpps_set(assoc, second, "FINISHED") == 0x0106
    finally:
        assoc.release()


def test_a_malformed_query_is_refused_and_the_scp_goes_on(services) -> None:
    ae = AE("CTSCANNER")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", services.port, ae_title="PACSMWL")
    assert assoc.is_established
    try:
        query = Dataset()
        query.ScheduledProcedureStepSequence = [Dataset()]
        query.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate = "2026-13-45"
        (status, _), *_ = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
        assert status.Status == 0xC000
    finally:
        assoc.release()
    assert find_with_pynetdicom(services, "CTSCANNER")[-1] == 0x0000


def test_mpps_from_a_registered_title_at_another_address_is_refused(services, database_url) -> None:
    ae = AE("FARAWAY")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", services.port, ae_title="PACSMWL")
    assert assoc.is_established
    try:
        assert mpps_create(assoc, generate_uid(), "ACC1") == 0x0124
    finally:
        assoc.release()
    assert load_order(database_url, "PO1").status == "scheduled"
