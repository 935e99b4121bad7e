"""The HL7 v2 listener: MLLP over TCP (python-hl7's asyncio streams) on `PACS_HL7_PORT`.

One event loop in a thread of its own reads frames from every connection; the messages are
applied by one writer thread (the database is synchronous), and answered in order on their
connections. The writer takes every message waiting when it is free, waits a moment (2 ms at
most) for those of the other open connections, and applies them in one transaction (one
commit, one ACK each once committed): with several connections sending at once, the commits
are shared instead of queued one behind the other. A frame cut short by a
new start block is answered AR; a connection closed in the middle of a frame has nobody left
to answer, and what it sent is stored as received.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hl7.mllp import HL7StreamReader, HL7StreamWriter, InvalidBlockError, start_hl7_server

from core.hl7_messages import AckCode, MessageRejected, read_header_or_none
from storage.database import get_engine
from storage.orders import receive_messages, store_rejection

log = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
MAX_MESSAGE_BYTES = 1 << 20
# At most this many messages in one transaction (each connection has at most one waiting).
MAX_BATCH = 100
# How long the writer waits for the other open connections' next messages before it applies
# what it has: each connection sends its next message once answered, so without the wait the
# batches alternate between halves of the connections and pay twice the commits.
GATHER_SECONDS = 0.002


@dataclass(frozen=True)
class Work:
    """For the writer thread: a message received (no `call`), or another database call (a
    rejection to store), whose answer the connection waits for."""

    future: asyncio.Future[str]
    call: Callable[[], str] | None = None
    raw: bytes = b""
    peer: str = ""


class Hl7Listener:
    """Start with `start()` (returns once the port is bound), stop with `stop()`."""

    def __init__(
        self, database_url: str, host: str, port: int, *, max_bytes: int = MAX_MESSAGE_BYTES
    ) -> None:
        self.database_url = database_url
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        self.loop = asyncio.new_event_loop()
        self.work: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self.writer = threading.Thread(target=self.write, name="pacs-hl7-writer", daemon=True)
        self.thread = threading.Thread(target=self.run, name="pacs-hl7-listener", daemon=True)
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        get_engine(self.database_url)  # the schema checked once before any message arrives
        self.writer.start()
        self.thread.start()
        self.ready.wait(10)
        if self.error is not None:
            self.work.put(None)
            self.writer.join(10)
            raise OSError(f"HL7 listener on {self.host}:{self.port}: {self.error}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.close_all)
            self.thread.join(timeout)
        if self.writer.is_alive():  # not when start() failed before it (schema behind)
            self.work.put(None)  # after what is queued: every message taken is answered or kept
            self.writer.join(timeout)

    def write(self) -> None:
        """The writer thread: whatever waits, in one transaction, until told to stop."""
        while (first := self.work.get()) is not None:
            batch, stop = [first], False
            deadline = time.monotonic() + GATHER_SECONDS
            while len(batch) < MAX_BATCH:
                wait = deadline - time.monotonic() if len(batch) < len(self.connections) else 0
                try:
                    work = self.work.get(timeout=wait) if wait > 0 else self.work.get_nowait()
                except queue.Empty:
                    break
                if work is None:
                    stop = True
                    break
                batch.append(work)
            self.apply(batch)
            if stop:
                return

    def apply(self, batch: list[Work]) -> None:
        messages = [work for work in batch if work.call is None]
        outcomes: list[tuple[asyncio.Future[str], str | Exception]] = []
        try:
            answers = receive_messages(self.database_url, [(w.raw, w.peer) for w in messages])
        except Exception as error:  # nothing was committed: no answer, the sender resends
            log.exception("HL7 messages not stored")
            outcomes += [(work.future, error) for work in messages]
        else:
            outcomes += zip((work.future for work in messages), answers, strict=True)
        for work in batch:
            if work.call is not None:
                try:
                    outcomes.append((work.future, work.call()))
                except Exception as error:
                    outcomes.append((work.future, error))
        # One wake-up of the event loop a batch (one a message cost a tenth of the CPU); a
        # closed loop (stopping) has nobody waiting: the messages are stored.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(settle, outcomes)

    async def submit(self, work: Work) -> str:
        self.work.put(work)
        return await work.future

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(
                start_hl7_server(
                    self.accept, self.host, self.port, limit=self.max_bytes, reuse_address=True
                )
            )
            self.port = self.server.sockets[0].getsockname()[1]
        except OSError as error:
            self.error = error
            self.ready.set()
            return
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def close_all(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.connections:
            task.cancel()
        self.loop.call_later(0.2, self.loop.stop)

    def accept(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        task = self.loop.create_task(self.serve(reader, writer))
        self.connections.add(task)
        task.add_done_callback(self.connections.discard)

    async def serve(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        peer_address = writer.get_extra_info("peername") or ("", 0)
        peer = f"{peer_address[0]}:{peer_address[1]}"
        try:
            while True:
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError as cut:
                    if cut.partial.strip():
                        await self.store_cut(cut.partial, peer)
                    return
                except InvalidBlockError:
                    answer = await self.reject(b"", peer, "data outside an MLLP frame (no <VT>)")
                    await self.send(writer, answer)
                    continue
                except ValueError:
                    reason = f"message larger than {self.max_bytes} bytes"
                    await self.send(writer, await self.reject(b"", peer, reason))
                    continue
                # A start block inside the frame: the sender began again before ending one.
                *cut_short, message = block.split(START_BLOCK)
                for fragment in filter(None, cut_short):
                    reason = "message cut short: a new frame began before it ended"
                    await self.send(writer, await self.reject(fragment, peer, reason))
                answer = await self.submit(Work(self.loop.create_future(), raw=message, peer=peer))
                await self.send(writer, answer)
        except (ConnectionError, asyncio.CancelledError):
            return
        except Exception:  # not stored (logged): no answer, the sender sends it again
            return
        finally:
            writer.close()

    async def send(self, writer: HL7StreamWriter, answer: str) -> None:
        writer.writeblock(answer.encode("utf-8"))
        await writer.drain()

    async def reject(self, raw: bytes, peer: str, reason: str) -> str:
        rejection = MessageRejected(AckCode.REJECT, reason)
        now = datetime.datetime.now(datetime.UTC)
        header = read_header_or_none(raw)

        def store() -> str:
            return store_rejection(self.database_url, header, raw, peer, now, rejection)

        return await self.submit(Work(self.loop.create_future(), call=store))

    async def store_cut(self, partial: bytes, peer: str) -> None:
        raw = partial[1:] if partial.startswith(START_BLOCK) else partial
        log.warning("HL7 connection from %s closed in the middle of a message", peer)
        await self.reject(raw, peer, "connection closed in the middle of the message")


def settle(outcomes: list[tuple[asyncio.Future[str], str | Exception]]) -> None:
    """In the event loop: each waiting connection gets its answer (or the error)."""
    for future, outcome in outcomes:
        if future.done():  # its connection went away meanwhile
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
