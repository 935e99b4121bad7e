"""Final reports and addenda leave as ORU^R01 to a real MLLP server: once each, and again
after that server comes back from being down."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7.mllp import start_hl7_server
from sqlalchemy import select

from config.settings import Settings, load_settings
from core.hl7_messages import AckCode, build_ack, parse_text, read_field
from storage.database import open_session
from storage.models.orders import Order, ResultMessage
from storage.models.reports import Report, ReportDocument
from storage.models.studies import Study
from storage.orders import receive_message
from tasks.results import send_pending_results
from tests.support.databases import new_database
from tests.support.orders import make_order, order_message
from tests.support.services import find_free_port

UTC = datetime.UTC


class ResultsReceiver:
    """The hospital's side: an MLLP server (python-hl7) that keeps what it gets and says AA."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None

    async def handle(self, reader, writer) -> None:
        try:
            while True:
                block = await reader.readblock()
                text = block.decode("utf-8")
                self.received.append(text)
                message = parse_text(text)
                control_id = read_field(message.segment("MSH"), 10)
                ack = build_ack(None, AckCode.ACCEPT, "ok", now=datetime.datetime.now(UTC))
                writer.writeblock(ack.replace("MSA|AA||", f"MSA|AA|{control_id}|").encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> None:
        if not self.thread.is_alive():
            self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_hl7_server(self.handle, "127.0.0.1", self.port, reuse_address=True), self.loop
        )
        self.server = future.result(10)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)

    def shutdown(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def receiver() -> Iterator[ResultsReceiver]:
    server = ResultsReceiver(find_free_port())
    server.start()
    yield server
    if server.server is not None and server.server.is_serving():
        server.stop()
    server.shutdown()


@pytest.fixture
def settings(tmp_path: Path, receiver: ResultsReceiver) -> Settings:
    settings = load_settings(
        {
            "PACS_HOME": str(tmp_path),
            "PACS_DATABASE_URL": new_database(tmp_path / "pacs.sqlite3"),
            "PACS_HL7_RESULTS_HOST": "127.0.0.1",
            "PACS_HL7_RESULTS_PORT": str(receiver.port),
            "PACS_TIMEZONE": "Europe/Paris",
        }
    )
    return settings


def make_reported_study(settings: Settings) -> int:
    """An ordered study with a final report signed; returns the report's id."""
    now = datetime.datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert "MSA|AA" in receive_message(settings.database_url, order_message(make_order(1)), "test")
    with open_session(settings.database_url) as session:
        study = Study(
            study_instance_uid="1.2.826.0.1.3680043.8.498.1",
            orthanc_id="o1",
            status="final",
            patient_id="P100",
            accession_number="ACC1",
            received_at=now,
            ingested_at=now,
        )
        session.add(study)
        session.flush()
        session.scalar(select(Order)).study_id = study.id
        report = Report(
            study_id=study.id,
            key="k" * 32,
            status="final",
            sections={"findings": "Clear lungs.\nNo effusion.", "impression": "Normal | fine"},
            created_at=now,
            updated_at=now,
        )
        report.documents.append(document(1, "final", now))
        session.add(report)
        session.flush()
        return report.id


def document(sequence: int, kind: str, at: datetime.datetime, text: str = "") -> ReportDocument:
    return ReportDocument(
        sequence=sequence,
        kind=kind,
        sections={"findings": "Clear lungs.\nNo effusion.", "impression": "Normal | fine"},
        addendum_text=text,
        signed_by="rad@example.org",
        signer_name="Curie^Marie",
        signed_at=at,
        series_instance_uid=f"2.25.{sequence}",
        sop_instance_uid=f"2.25.{sequence}0",
    )


def test_a_final_report_leaves_once_and_an_addendum_after_the_receiver_is_back(
    settings, receiver
) -> None:
    report_id = make_reported_study(settings)
    first = send_pending_results.fn(settings)
    assert (first.sent, first.failed) == (1, {})
    (oru,) = receiver.received
    message = parse_text(oru)
    msh, obr = message.segment("MSH"), message.segment("OBR")
    assert read_field(msh, 9) == "ORU" and read_field(msh, 9, 2) == "R01"
    assert read_field(obr, 2) == "PO1" and read_field(obr, 18) == "ACC1"
    assert read_field(obr, 25) == "F"
    assert read_field(obr, 22) == "20261130110000"  # signed 10:00 UTC, 11:00 in Paris
    lines = [read_field(segment, 5) for segment in message.segments("OBX")]
    assert "Clear lungs." in lines and "Normal | fine" in lines
    assert read_field(message.segment("PID"), 5, 2) == "Jérôme"
    # Nothing new: nothing sent again.
    assert send_pending_results.fn(settings).sent == 0
    assert len(receiver.received) == 1

    receiver.stop()
    with open_session(settings.database_url) as session:
        report = session.get(Report, report_id)
        at = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        report.documents.append(document(2, "addendum", at, "Small nodule, see CT."))
    down = send_pending_results.fn(settings)
    assert down.sent == 0 and len(down.failed) == 1
    with open_session(settings.database_url) as session:
        waiting = session.scalar(select(ResultMessage).where(ResultMessage.sent_at.is_(None)))
        assert waiting.attempts == 1 and waiting.last_error

    receiver.start()
    back = send_pending_results.fn(settings)
    assert (back.sent, back.failed) == (1, {})
    assert len(receiver.received) == 2
    addendum = parse_text(receiver.received[1])
    assert read_field(addendum.segment("OBR"), 25) == "C"
    assert "Small nodule, see CT." in [read_field(s, 5) for s in addendum.segments("OBX")]
    assert send_pending_results.fn(settings).sent == 0
    assert len(receiver.received) == 2


def test_nothing_is_sent_without_a_results_host(settings, receiver) -> None:
    make_reported_study(settings)
    quiet = dataclasses.replace(settings, hl7_results_host="")
    assert send_pending_results.fn(quiet).sent == 0
    assert receiver.received == []


def test_unordered_studies_send_nothing(settings, receiver) -> None:
    make_reported_study(settings)
    with open_session(settings.database_url) as session:
        session.scalar(select(Order)).study_id = None
    assert send_pending_results.fn(settings).sent == 0
    assert receiver.received == []
