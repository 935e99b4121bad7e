"""Orders: HL7 messages per second through the listener into the database (with the ACK of
each), and Modality Worklist C-FIND latency with 10,000 scheduled orders.

HL7: new orders (ORM^O01) sent over `--connections` MLLP connections by python-hl7's client,
each message waiting for its ACK (all must be AA); the baseline, measured in the same run,
is a python-hl7 MLLP server that answers AA without reading or storing anything.
MWL: `--orders` open orders over 20 stations (five modalities) and 25 days; a modality
asks for today's orders of its station and modality (pynetdicom, one association); the
baseline is C-ECHO on the same association. Goals: >= 500 messages/s, C-FIND p95 <= 50 ms.

The clients (the hospital's system, the modality) run in a process of their own, as they
would on their own machines: in the server's process they would share its interpreter lock.
Besides the rates, the server's own CPU time per message or query is printed (this
process's, the clients excluded): on a shared machine it moves less than the clock does.

    .venv/bin/python benchmarks/orders.py [--messages 5000] [--connections 4] [--orders 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from hl7.mllp import start_hl7_server  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pynetdicom import AE, _config  # noqa: E402
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification  # noqa: E402

from core.hl7_messages import AckCode, build_ack, read_ack, read_header_or_none  # noqa: E402
from core.modalities import Modality  # noqa: E402
from core.records import Priority  # noqa: E402
from pacs.garbage_collection import tune_garbage_collection  # noqa: E402
from pacs.hl7_listener import Hl7Listener  # noqa: E402
from pacs.modality_services import ModalityServices  # noqa: E402
from storage.database import create_database_engine, open_session  # noqa: E402
from storage.dicom_sender import set_tcp_nodelay  # noqa: E402
from storage.hl7_client import send_messages  # noqa: E402
from storage.modalities import ensure_modality  # noqa: E402
from storage.models.orders import Order  # noqa: E402
from storage.schema import upgrade_database  # noqa: E402
from tests.support.orders import make_order, order_message  # noqa: E402

MODALITIES = ("CT", "MR", "CR", "US", "DX")
# 10,000 orders over 20 stations and 25 days: about 20 a station a day, as in a busy department.
STATIONS, DAYS = 20, 25


def in_client_process(function, *args):
    """`function(*args)` in a new process (spawned: this one has threads); its result."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def push(port: int, messages: int, connections: int, prefix: str) -> tuple[float, list[str]]:
    """Send `messages` new orders over `connections` connections at once (in the client
    process); seconds from the first to the last answer, and every answer's ACK code."""
    batches = make_batches(messages, connections, prefix)
    answers: list[list[bytes]] = [[] for _ in batches]

    def run(index: int) -> None:
        answers[index] = send_messages("127.0.0.1", port, batches[index], timeout=3600)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return seconds, [read_ack(answer).code for batch in answers for answer in batch]


def make_batches(messages: int, connections: int, prefix: str) -> list[list[bytes]]:
    per = messages // connections
    return [
        [order_message(make_order(c * per + i), control_id=f"{prefix}{c}-{i}") for i in range(per)]
        for c in range(connections)
    ]


class AckOnlyServer:
    """The baseline: MLLP framing and an AA for each message, nothing else."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None
        self.port = 0

    async def handle(self, reader, writer) -> None:
        try:
            while True:
                block = await reader.readblock()
                ack = build_ack(
                    read_header_or_none(block),
                    AckCode.ACCEPT,
                    "ok",
                    now=datetime.datetime.now(datetime.UTC),
                )
                writer.writeblock(ack.encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def __enter__(self) -> AckOnlyServer:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_hl7_server(self.handle, "127.0.0.1", 0), self.loop
        )
        self.server = future.result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()
            await asyncio.sleep(0.5)  # the handlers see their clients leave and close

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def make_database(path: Path) -> str:
    """A new SQLite database at this release's schema; its URL."""
    url = f"sqlite:///{path}"
    upgrade_database(create_database_engine(url))
    return url


def bench_hl7(folder: Path, messages: int, connections: int) -> None:
    url = make_database(folder / "hl7.sqlite3")
    with AckOnlyServer() as baseline:
        base_seconds, _ = in_client_process(push, baseline.port, messages, connections, "B")
    listener = Hl7Listener(url, "127.0.0.1", 0)
    listener.start()
    tune_garbage_collection()  # as `pacs orders serve` and `pacs up` do once started
    try:
        cpu = time.process_time()
        seconds, codes = in_client_process(push, listener.port, messages, connections, "L")
        cpu = time.process_time() - cpu
    finally:
        listener.stop()
    with open_session(url) as session:
        stored = session.query(Order).count()
    assert set(codes) == {"AA"} and len(codes) == stored == messages, (set(codes), stored)
    rate, base_rate = messages / seconds, messages / base_seconds
    print(
        f"HL7 listener: {messages} ORM^O01 over {connections} connections in {seconds:.2f} s: "
        f"{rate:.0f} messages/s with ACK, stored and applied (goal >= 500); "
        f"ACK-only MLLP baseline {base_rate:.0f}/s, ratio {rate / base_rate:.2f}; "
        f"listener CPU {cpu * 1000 / messages:.2f} ms a message "
        f"(at most {messages / cpu:.0f}/s on one free core)"
    )


def fill_orders(url: str, count: int, today: datetime.datetime) -> None:
    now = datetime.datetime.now(datetime.UTC)
    with open_session(url) as session:
        for number in range(count):
            fields = make_order(number)
            session.add(
                Order(
                    placer_order_number=f"PO{number}",
                    accession_number=f"ACC{number}",
                    requested_procedure_id=f"RP{number}",
                    scheduled_step_id=f"SPS{number}",
                    modality=MODALITIES[number % STATIONS % len(MODALITIES)],
                    scheduled_station_aet=f"ST{number % STATIONS:02d}",
                    scheduled_at=today
                    + datetime.timedelta(
                        days=(number // STATIONS) % DAYS - DAYS // 2, minutes=number % 600
                    ),
                    procedure_code=fields.procedure_code,
                    procedure_text=fields.procedure_text,
                    priority=str(Priority.ROUTINE),
                    patient_id=f"P{number % 3000}",
                    patient_name=f"Patient{number % 3000}^Test",
                    status="scheduled",
                    status_changed_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        ensure_modality(session, Modality("BENCHSCU", "127.0.0.1", 104), now)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ask_worklist(port: int, queries: int, today: datetime.datetime):
    """The modality (in the client process): `queries` C-FINDs for today's orders of one
    station and modality, each followed by a C-ECHO; milliseconds of each, matches of each,
    associations renewed, milliseconds of the queries left unanswered (aborted), and the
    modality's own CPU seconds."""
    # A modality's own tooling: dcmtk with TCP_NODELAY=1, no debug dump of every answer.
    _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = AE("BENCHSCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.add_requested_context(Verification)
    ae.dimse_timeout = ae.network_timeout = 300
    reconnects = 0
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSMWL")
    assert assoc.is_established
    set_tcp_nodelay(assoc)
    cpu = time.process_time()
    find_ms, echo_ms, matches, lost = [], [], [], []
    for index in range(queries):
        if not assoc.is_established:  # the SCP's idle timeout, on a loaded machine
            reconnects += 1
            assoc = ae.associate("127.0.0.1", port, ae_title="PACSMWL")
            set_tcp_nodelay(assoc)
        query = Dataset()
        query.PatientName = ""
        query.PatientID = ""
        query.AccessionNumber = ""
        step = Dataset()
        station = index % STATIONS
        step.Modality = MODALITIES[station % len(MODALITIES)]
        step.ScheduledStationAETitle = f"ST{station:02d}"
        step.ScheduledProcedureStepStartDate = today.strftime("%Y%m%d")
        step.ScheduledProcedureStepStartTime = ""
        step.ScheduledProcedureStepID = ""
        query.ScheduledProcedureStepSequence = [step]
        started = time.perf_counter()
        answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
        elapsed = (time.perf_counter() - started) * 1000
        if "Status" not in answers[-1][0]:  # no answer: the association was aborted
            lost.append(elapsed)
            continue
        assert answers[-1][0].Status == 0x0000, answers[-1][0]
        find_ms.append(elapsed)
        matches.append(len(answers) - 1)
        started = time.perf_counter()
        assoc.send_c_echo()
        echo_ms.append((time.perf_counter() - started) * 1000)
    cpu = time.process_time() - cpu
    assoc.release()
    return find_ms, echo_ms, matches, reconnects, lost, cpu


def bench_mwl(folder: Path, orders: int, queries: int) -> None:
    url = make_database(folder / "mwl.sqlite3")
    today = datetime.datetime.now().replace(hour=8, minute=0, second=0, microsecond=0)
    fill_orders(url, orders, today)
    services = ModalityServices(url, "PACSMWL", "127.0.0.1", 0)
    services.start()
    try:
        cpu = time.process_time()
        find_ms, echo_ms, matches, reconnects, lost, client_cpu = in_client_process(
            ask_worklist, services.port, queries, today
        )
        cpu = time.process_time() - cpu
    finally:
        services.stop()
    p95 = percentile(find_ms, 0.95)
    print(
        f"MWL C-FIND with {orders} scheduled orders: {queries} queries (today, one modality "
        f"and station; {statistics.mean(matches):.0f} items each on average): "
        f"p50 {percentile(find_ms, 0.5):.1f} ms, p95 {p95:.1f} ms (goal <= 50); "
        f"C-ECHO baseline p95 {percentile(echo_ms, 0.95):.1f} ms; "
        f"SCP CPU {cpu * 1000 / queries:.1f} ms a query and its echo "
        f"(the modality's {client_cpu * 1000 / queries:.1f} ms); "
        f"{reconnects} associations renewed, {len(lost)} queries unanswered (aborted"
        f"{f' after {max(lost) / 1000:.1f} s' if lost else ''})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--only", choices=("hl7", "mwl"), help="one of the two benchmarks")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        if args.only != "mwl":
            bench_hl7(Path(folder), args.messages, args.connections)
        if args.only != "hl7":
            bench_mwl(Path(folder), args.orders, args.queries)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
