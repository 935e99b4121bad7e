"""The HL7 listener over real TCP: orders placed, changed, cancelled, merged; every bad input
gets its ACK; a flood is neither lost nor applied twice."""

from __future__ import annotations

import dataclasses
import datetime
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.hl7_messages import (
    OrderControl,
    PatientIdentity,
    build_patient_message,
    read_ack,
)
from pacs.hl7_listener import Hl7Listener
from storage.database import open_session
from storage.hl7_client import send_message, send_messages
from storage.models.orders import Hl7Message, Order
from storage.orders import receive_messages
from tests.support.databases import new_database
from tests.support.orders import NOW, PATIENT, make_order, order_message
from tests.support.services import find_free_port, run_pacs

SB, EB, CR = b"\x0b", b"\x1c", b"\r"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return new_database(tmp_path / "pacs.sqlite3")


@pytest.fixture
def listener(database_url: str) -> Iterator[Hl7Listener]:
    server = Hl7Listener(database_url, "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


def send(listener: Hl7Listener, message: bytes):
    return read_ack(send_message("127.0.0.1", listener.port, message, timeout=10))


def load_orders(database_url: str) -> dict[str, Order]:
    with open_session(database_url) as session:
        return {o.placer_order_number: o for o in session.scalars(select(Order))}


def count_messages(database_url: str) -> dict[str, int]:
    with open_session(database_url) as session:
        rows = session.execute(
            select(Hl7Message.ack_code, func.count()).group_by(Hl7Message.ack_code)
        ).all()
    return dict(rows)


def test_an_order_is_placed_changed_and_cancelled(listener, database_url) -> None:
    placed = send(listener, order_message(make_order(1), control_id="A1"))
    assert (placed.code, placed.control_id) == ("AA", "A1")
    assert "order PO1 placed" in placed.text
    order = load_orders(database_url)["PO1"]
    assert order.status == "scheduled"
    assert (order.accession_number, order.requested_procedure_id, order.scheduled_step_id) == (
        "ACC1",
        "RP1",
        "SPS1",
    )
    assert (order.modality, order.scheduled_station_aet, order.priority) == ("CT", "CT01", "URGENT")
    assert order.scheduled_at == NOW + datetime.timedelta(hours=2)
    assert order.patient_name == "Dupont^Jérôme"
    assert (order.patient_id, order.patient_id_issuer) == ("P100", "HOSP")
    assert order.patient_birth_date == datetime.date(1970, 1, 2)
    assert order.referring_physician == "House^Gregory^^Dr"
    assert (order.procedure_code, order.procedure_text) == ("CTCHEST", "CT chest")
    assert order.reason == "cough for three weeks"

    change = make_order(1, control=OrderControl.CHANGE, scheduled_station_aet="CT02")
    changed = send(listener, order_message(change, control_id="A2"))
    assert changed.code == "AA"
    assert load_orders(database_url)["PO1"].scheduled_station_aet == "CT02"

    cancelled = send(listener, order_message(make_order(1, control=OrderControl.CANCEL)))
    assert cancelled.code == "AA"
    assert load_orders(database_url)["PO1"].status == "cancelled"
    # The raw bytes are kept exactly.
    with open_session(database_url) as session:
        first = session.scalar(select(Hl7Message).where(Hl7Message.control_id == "A1"))
        assert first.raw == order_message(make_order(1), control_id="A1")


def test_omi_places_an_order_with_its_ipc_fields(listener, database_url) -> None:
    fields = make_order(7, study_instance_uid="1.2.826.0.1.7", scheduled_station_name="CT room")
    ack = send(listener, order_message(fields, message_type="OMI^O23"))
    assert ack.code == "AA", ack.text
    order = load_orders(database_url)["PO7"]
    assert order.study_instance_uid == "1.2.826.0.1.7"
    assert order.scheduled_station_name == "CT room"


def test_hold_release_discontinue(listener, database_url) -> None:
    send(listener, order_message(make_order(2)))
    assert send(listener, order_message(make_order(2, control=OrderControl.HOLD))).code == "AA"
    assert load_orders(database_url)["PO2"].status == "on_hold"
    assert send(listener, order_message(make_order(2, control=OrderControl.RELEASE))).code == "AA"
    assert load_orders(database_url)["PO2"].status == "scheduled"
    stop = send(listener, order_message(make_order(2, control=OrderControl.DISCONTINUE)))
    assert stop.code == "AA"
    assert load_orders(database_url)["PO2"].status == "discontinued"
    refused = send(listener, order_message(make_order(2, control=OrderControl.RELEASE)))
    assert refused.code == "AE"
    assert "not on hold" in refused.text


def test_cancel_of_an_unknown_order_is_an_application_error(listener, database_url) -> None:
    ack = send(listener, order_message(make_order(99, control=OrderControl.CANCEL)))
    assert ack.code == "AE"
    assert "does not know" in ack.text
    assert load_orders(database_url) == {}
    assert count_messages(database_url) == {"AE": 1}


def test_the_same_message_twice_changes_nothing(listener, database_url) -> None:
    message = order_message(make_order(3), control_id="DUP1")
    assert send(listener, message).code == "AA"
    before = load_orders(database_url)["PO3"]
    again = send(listener, message)
    assert again.code == "AA"
    assert "duplicate" in again.text
    after = load_orders(database_url)["PO3"]
    assert after.updated_at == before.updated_at
    # A control id reused for different content is refused, and applies nothing.
    other = order_message(make_order(3, scheduled_station_aet="MR01"), control_id="DUP1")
    reused = send(listener, other)
    assert reused.code == "AR"
    assert load_orders(database_url)["PO3"].scheduled_station_aet == "CT01"
    assert count_messages(database_url) == {"AA": 2, "AR": 1}


@pytest.mark.parametrize("with_an_error", [False, True])
def test_messages_arriving_together_are_applied_in_one_batch_as_one_by_one(
    database_url, with_an_error: bool
) -> None:
    """What the writer thread does with the messages waiting at once: one transaction, or,
    when one of them cannot be applied (AE), each again on its own; the answers are the same."""
    first = order_message(make_order(40), control_id="B1")
    batch = [
        first,
        order_message(make_order(41), control_id="B2"),
        first,  # the same message from another connection: applied once
        order_message(make_order(40, control=OrderControl.CANCEL), control_id="B3"),
        order_message(make_order(41), control_id="B1"),  # B1 again, other content: refused
        b"this is not HL7",
    ]
    if with_an_error:
        batch.insert(2, order_message(make_order(99, control=OrderControl.CANCEL)))
    answers = [
        read_ack(a.encode()) for a in receive_messages(database_url, [(m, "p") for m in batch])
    ]
    expected = [
        ("AA", "order PO40 placed"),
        ("AA", "order PO41 placed"),
        ("AA", "duplicate of message"),
        ("AA", "order PO40 cancelled"),
        ("AR", "already used by another message"),
        ("AR", "malformed"),
    ]
    if with_an_error:
        expected.insert(2, ("AE", "does not know"))
    for ack, (code, text) in zip(answers, expected, strict=True):
        assert ack.code == code and text in ack.text, (ack, code, text)
    orders = load_orders(database_url)
    assert set(orders) == {"PO40", "PO41"} and orders["PO40"].status == "cancelled"
    assert count_messages(database_url) == (
        {"AA": 4, "AR": 2, "AE": 1} if with_an_error else {"AA": 4, "AR": 2}
    )


def test_a_patient_update_in_the_batch_of_an_order_reaches_that_order(database_url) -> None:
    """A batch flushes only at its commit: the update must still see the order placed before
    it in the same batch."""
    renamed = dataclasses.replace(PATIENT, name="Dupont^Jerome^Paul")
    update = build_patient_message("ADT^A08", renamed, control_id="ADT9", now=NOW)
    batch = [order_message(make_order(60), control_id="O60"), update.encode()]
    answers = [
        read_ack(a.encode()) for a in receive_messages(database_url, [(m, "p") for m in batch])
    ]
    assert [ack.code for ack in answers] == ["AA", "AA"]
    assert "updated on 1 orders" in answers[1].text
    assert load_orders(database_url)["PO60"].patient_name == "Dupont^Jerome^Paul"


def test_twin_messages_on_many_connections_at_once_are_applied_once(listener, database_url) -> None:
    """Eight connections at once, two by two sending the same messages: every one answered
    AA, each order placed once, every message kept."""
    pairs = [
        [order_message(make_order(100 + p * 25 + i), control_id=f"T{p}-{i}") for i in range(25)]
        for p in range(4)
    ]
    answers: dict[int, list[bytes]] = {}

    def push(index: int) -> None:
        answers[index] = send_messages("127.0.0.1", listener.port, pairs[index // 2], timeout=300)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    acks = [read_ack(answer) for index in range(8) for answer in answers[index]]
    assert len(acks) == 200 and {ack.code for ack in acks} == {"AA"}
    assert sum("duplicate" in ack.text for ack in acks) == 100
    assert len(load_orders(database_url)) == 100
    assert count_messages(database_url) == {"AA": 200}


def test_patient_update_and_merge(listener, database_url) -> None:
    send(listener, order_message(make_order(4)))
    old = PatientIdentity("P0", "HOSP", "Smith^Ann", datetime.date(1980, 5, 6), "F")
    send(listener, order_message(make_order(5), old))
    renamed = dataclasses.replace(PATIENT, name="Dupont^Jerome^Paul")
    update = build_patient_message("ADT^A08", renamed, control_id="ADT1", now=NOW)
    ack = send(listener, update.encode())
    assert ack.code == "AA", ack.text
    assert load_orders(database_url)["PO4"].patient_name == "Dupont^Jerome^Paul"
    merge = build_patient_message(
        "ADT^A40", renamed, control_id="ADT2", now=NOW, prior_patient_id="P0"
    )
    merged = send(listener, merge.encode())
    assert merged.code == "AA"
    assert "1 orders moved" in merged.text
    orders = load_orders(database_url)
    assert orders["PO5"].patient_id == "P100"
    assert orders["PO5"].patient_name == "Dupont^Jerome^Paul"
    assert send(listener, merge.encode()).code == "AA"  # again: nothing more to move


@pytest.mark.parametrize(
    ("raw", "code", "reason"),
    [
        (b"this is not HL7", "AR", "malformed"),
        (b"MSH|^~\\&|HIS|H|PACS|R|20261130||ORM^O01||P|2.3\rPID|||1", "AR", "control id"),
        (b"MSH|^~\\&|HIS|H|PACS|R|20261130||ORU^R01|U1|P|2.3\rPID|||1", "AR", "unsupported"),
        (
            "MSH|^~\\&|HIS|H|PACS|R|20261130||ADT^A08|E1|P|2.5||||||UNICODE UTF-8\r"
            "PID|1||P1||Müller^Hans".encode("latin-1"),
            "AR",
            "not UNICODE UTF-8",
        ),
        (b"MSH|^~\\&|HIS|H|PACS|R|20261130||ORM^O01|N1|P|2.3\rPID|1||P1", "AE", "no ORC"),
        (b"MSH|^~\\&|HIS|H|PACS|R|20261130||ORM^O01|N2|P|2.3\rORC|NW|X", "AE", "PID"),
        (
            b"MSH|^~\\&|HIS|H|PACS|R|20261130||ADT^A08|C1|P|2.5||||||KOI8\rPID|1||P1",
            "AR",
            "character set",
        ),
    ],
)
def test_bad_messages_get_the_ack_that_says_why(listener, database_url, raw, code, reason) -> None:
    ack = send(listener, raw)
    assert ack.code == code
    assert reason in ack.text
    assert load_orders(database_url) == {}
    with open_session(database_url) as session:
        stored = session.scalar(select(Hl7Message))
        assert stored.raw == raw
        assert stored.ack_code == code


def test_a_latin1_message_that_says_so_is_read(listener, database_url) -> None:
    text = order_message(make_order(6)).decode().replace("UNICODE UTF-8", "8859/1")
    ack = send(listener, text.encode("latin-1"))
    assert ack.code == "AA", ack.text
    assert load_orders(database_url)["PO6"].patient_name == "Dupont^Jérôme"


def read_frames(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    while data.count(EB + CR) < count:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before every answer"
        data += chunk
    return [frame.lstrip(SB) for frame in data.split(EB + CR) if frame]


def test_a_frame_cut_by_a_new_frame_is_rejected_and_the_next_one_applied(
    listener, database_url
) -> None:
    whole = order_message(make_order(8), control_id="W1")
    cut = order_message(make_order(9), control_id="CUT1")[:90]
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(SB + cut + SB + whole + EB + CR)
        first, second = (read_ack(frame) for frame in read_frames(sock, 2))
    assert (first.code, first.control_id) == ("AR", "CUT1")
    assert "cut" in first.text
    assert (second.code, second.control_id) == ("AA", "W1")
    assert set(load_orders(database_url)) == {"PO8"}


def test_a_connection_closed_mid_frame_applies_nothing_and_a_resend_works(
    listener, database_url
) -> None:
    message = order_message(make_order(10), control_id="HALF1")
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(SB + message[: len(message) // 2])
    # The listener keeps the piece as received, rejected; nothing applied.
    for _ in range(100):
        if count_messages(database_url).get("AR"):
            break
        threading.Event().wait(0.05)
    assert count_messages(database_url) == {"AR": 1}
    assert load_orders(database_url) == {}
    assert send(listener, message).code == "AA"
    assert set(load_orders(database_url)) == {"PO10"}


def test_data_outside_a_frame_is_rejected(listener) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(b"MSH|^~\\&|no start block" + EB + CR)
        (frame,) = read_frames(sock, 1)
    assert read_ack(frame).code == "AR"


@pytest.mark.slow
def test_a_flood_of_ten_thousand_messages_is_neither_lost_nor_applied_twice(
    listener, database_url
) -> None:
    connections, per_connection = 4, 2500
    batches = [
        [
            order_message(make_order(c * per_connection + i), control_id=f"F{c}-{i}")
            for i in range(per_connection)
        ]
        for c in range(connections)
    ]
    answers: dict[int, list[bytes]] = {}

    def push(index: int) -> None:
        answers[index] = send_messages("127.0.0.1", listener.port, batches[index], timeout=600)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    acks = [read_ack(answer) for index in range(connections) for answer in answers[index]]
    assert len(acks) == 10_000
    assert {ack.code for ack in acks} == {"AA"}
    expected = {f"F{c}-{i}" for c in range(connections) for i in range(per_connection)}
    assert {ack.control_id for ack in acks} == expected
    with open_session(database_url) as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 10_000
    # The whole flood again: every message answered as a duplicate, nothing applied twice.
    again = send_messages("127.0.0.1", listener.port, batches[0][:500], timeout=300)
    assert all("duplicate" in read_ack(answer).text for answer in again)
    with open_session(database_url) as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 10_000
    assert count_messages(database_url) == {"AA": 10_500}


def test_pacs_hl7_send_prints_the_ack(listener, database_url, tmp_path) -> None:
    message_file = tmp_path / "order.hl7"
    # As written by hand: one segment a line, LF endings.
    message_file.write_bytes(order_message(make_order(20), control_id="CLI1").replace(CR, b"\n"))
    env = {"PACS_HOME": str(tmp_path), "PACS_DATABASE_URL": database_url}
    sent = run_pacs(env, "hl7", "send", str(message_file), "--port", str(listener.port))
    assert sent.returncode == 0, sent.stderr
    assert "MSA|AA|CLI1|order PO20 placed" in sent.stdout
    assert set(load_orders(database_url)) == {"PO20"}

    message_file.write_bytes(b"MSH|^~\\&|HIS|H|PACS|R|20261130||ORU^R01|U9|P|2.3\nPID|||1\n")
    refused = run_pacs(env, "hl7", "send", str(message_file), "--port", str(listener.port))
    assert refused.returncode == 1
    assert "MSA|AR|U9|" in refused.stdout
    assert refused.stderr.startswith("pacs: AR: unsupported message type ORU^R01")

    missing = run_pacs(env, "hl7", "send", str(tmp_path / "nope.hl7"), "--port", "1")
    assert missing.returncode == 1
    assert missing.stderr.startswith("pacs: cannot read")
    closed = run_pacs(env, "hl7", "send", str(message_file), "--port", str(find_free_port()))
    assert closed.returncode == 1
    assert "refused" in closed.stderr.lower()
