"""A study meets its order: by accession number, identity and priority from the order, a
wrong patient held in quarantine; orders without studies and studies without orders."""

from __future__ import annotations

import datetime
from io import BytesIO
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select

from config.settings import Settings, load_settings
from core.hl7_messages import PatientIdentity
from core.orders import OrderedIdentity, compare_with_order
from core.records import Priority
from storage.archive import ArchiveClient
from storage.database import get_engine, open_session
from storage.models.orders import Order
from storage.models.quarantine import QuarantinedStudy
from storage.models.studies import Study, StudyEvent
from storage.orders import list_orders_without_studies, list_studies_without_orders, receive_message
from tasks.archive import fetch_archived_studies
from tasks.database import record_studies
from tests.support.databases import new_database
from tests.support.orders import make_order, order_message
from tests.support.studies import clone_study
from tests.support.turnaround import refresh

ORDERED = OrderedIdentity("P1", "Dupont^Jérôme", datetime.date(1970, 1, 2), "")


def test_same_patient_written_differently_is_a_warning_at_most() -> None:
    assert (
        compare_with_order(
            ORDERED,
            patient_id="P1",
            patient_name="DUPONT^JEROME^^",
            patient_birth_date=datetime.date(1970, 1, 2),
            study_instance_uid="1.2.3",
        )
        == []
    )
    (finding,) = compare_with_order(
        ORDERED,
        patient_id="P1",
        patient_name="Durand^Jérôme",
        patient_birth_date=None,
        study_instance_uid="1.2.3",
    )
    assert (finding.code, finding.severity) == ("ORDER_NAME_MISMATCH", "warning")


def test_another_patient_id_is_an_error() -> None:
    (finding,) = compare_with_order(
        ORDERED, patient_id="P2", patient_name="", patient_birth_date=None, study_instance_uid=""
    )
    assert (finding.code, finding.severity) == ("ORDER_PATIENT_MISMATCH", "error")
    assert "wrong patient" in finding.message


def test_another_study_uid_than_the_orders_is_a_warning() -> None:
    ordered = OrderedIdentity("P1", "", None, "1.2.3")
    (finding,) = compare_with_order(
        ordered, patient_id="P1", patient_name="", patient_birth_date=None, study_instance_uid="9.9"
    )
    assert finding.code == "ORDER_STUDY_UID_MISMATCH"


@pytest.fixture
def settings(orthanc_env: dict[str, str], tmp_path: Path) -> Settings:
    env = {
        **orthanc_env,
        "PACS_DATABASE_URL": new_database(tmp_path / "pacs.sqlite3"),
        # The session's home is shared: a warehouse of this test's own, not one another
        # test built from another database (its study ids collide with these).
        "PACS_WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb"),
    }
    settings = load_settings(env)
    get_engine(settings.database_url)
    return settings


def ingest(settings: Settings, datasets) -> str:
    """Store the study in the real archive and run the pipeline's tasks on it."""
    with ArchiveClient.from_settings(settings) as client:
        for ds in datasets:
            buffer = BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            orthanc_id = client.upload_instance(buffer.getvalue()).study_id
    fetched = fetch_archived_studies.fn(settings, [orthanc_id])
    recorded = record_studies.fn(settings, fetched.studies)
    assert not recorded.failed, recorded.failed
    return orthanc_id


def place(settings: Settings, number: int, patient: PatientIdentity, **changes) -> None:
    message = order_message(make_order(number, **changes), patient)
    assert "MSA|AA" in receive_message(settings.database_url, message, "test")


PATIENT = PatientIdentity("M-P1", "HOSP", "Martin^Émile", datetime.date(1961, 7, 8), "M")


def test_a_study_with_the_orders_accession_takes_its_patient_and_priority(settings) -> None:
    place(settings, 501, PATIENT, priority=Priority.STAT, accession_number="M-ACC1")
    datasets = clone_study(
        "CT", limit=2, AccessionNumber="M-ACC1", PatientID="M-P1", PatientName="MARTIN^EMILE"
    )
    ingest(settings, datasets)
    with open_session(settings.database_url) as session:
        study = session.scalar(
            select(Study).where(Study.study_instance_uid == datasets[0].StudyInstanceUID)
        )
        assert study.status == "received"
        assert study.patient_name == "Martin^Émile"
        assert study.patient_birth_date == datetime.date(1961, 7, 8)
        assert study.priority == "STAT"
        assert study.referring_physician == "House^Gregory^^Dr"
        order = session.scalar(select(Order).where(Order.accession_number == "M-ACC1"))
        assert order.study_id == study.id
        assert order.status == "completed"
        assert [o.placer_order_number for o in list_orders_without_studies(session)] == []


def test_a_study_of_another_patient_than_its_order_is_held(settings) -> None:
    place(settings, 502, PATIENT, accession_number="M-ACC2")
    datasets = clone_study("CT", limit=2, AccessionNumber="M-ACC2", PatientID="SOMEONE-ELSE")
    ingest(settings, datasets)
    with open_session(settings.database_url) as session:
        entry = session.scalar(
            select(QuarantinedStudy).where(
                QuarantinedStudy.study_instance_uid == datasets[0].StudyInstanceUID
            )
        )
        assert entry is not None and entry.state == "open"
        codes = [reason["code"] for reason in entry.reasons]
        assert "ORDER_PATIENT_MISMATCH" in codes
        assert "wrong patient" in entry.reasons[codes.index("ORDER_PATIENT_MISMATCH")]["message"]
        order = session.scalar(select(Order).where(Order.accession_number == "M-ACC2"))
        assert order.study_id is None
        assert order.status == "scheduled"
        assert [o.placer_order_number for o in list_orders_without_studies(session)] == ["PO502"]


def test_a_study_without_an_order_is_listed_as_such(settings) -> None:
    datasets = clone_study("CR", limit=1, AccessionNumber="NO-ORDER-1")
    ingest(settings, datasets)
    with open_session(settings.database_url) as session:
        orphans = list_studies_without_orders(session)
        assert [s.study_instance_uid for s in orphans] == [datasets[0].StudyInstanceUID]


def test_an_ordered_study_reaches_the_warehouse_with_its_order_and_exam_times(settings) -> None:
    """End to end: an order by HL7, its study stored in the real archive and ingested (image
    times read from the instances), a final report, then the warehouse's extract and build:
    the order's turnaround from known times (PACS_TIMEZONE UTC here)."""
    place(settings, 503, PATIENT, accession_number="M-ACC3")  # ordered 2026-11-30 09:00
    datasets = clone_study(
        "CT",
        limit=2,
        AccessionNumber="M-ACC3",
        PatientID="M-P1",
        StudyDate="20261130",
        StudyTime="092500",
        AcquisitionDate="20261130",
    )
    for ds, time in zip(datasets, ("093000", "094000"), strict=True):
        ds.AcquisitionTime = time
        ds.pop("AcquisitionDateTime", None)
    ingest(settings, datasets)
    with open_session(settings.database_url) as session:
        study = session.scalar(
            select(Study).where(Study.study_instance_uid == datasets[0].StudyInstanceUID)
        )
        assert (study.first_instance_at, study.last_instance_at) == (
            datetime.datetime(2026, 11, 30, 9, 30),
            datetime.datetime(2026, 11, 30, 9, 40),
        )
        study.status = "final"
        final = datetime.datetime(2026, 11, 30, 10, 40, tzinfo=datetime.UTC)
        session.add(StudyEvent(study_id=study.id, kind="final", at=final, user_email="r@x.org"))
    refresh(settings, get_engine(settings.database_url), now=final)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        row = con.sql(
            "select ordered_to_exam_minutes, exam_to_final_minutes, ordered_to_final_minutes"
            " from fct_study_turnaround where accession_number = 'M-ACC3'"
        ).fetchall()
    # Exam from the Study Time (09:25) to the last image (09:40), final at 10:40.
    assert row == [(25.0, 60.0, 100.0)]
