"""The HL7 v2 listener: MLLP over TCP (python-hl7's asyncio streams) on `PACS_HL7_PORT`.

One event loop in a thread of its own reads frames from every connection; each message is
applied in a small thread pool (the database is synchronous) and answered in order on its
connection. A frame cut short by a new start block is answered AR; a connection closed in
the middle of a frame has nobody left to answer, and what it sent is stored as received.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from hl7.mllp import HL7StreamReader, HL7StreamWriter, InvalidBlockError, start_hl7_server

from core.hl7_messages import AckCode, MessageRejected, read_header_or_none
from storage.database import get_engine
from storage.orders import receive_message, store_rejection

log = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
MAX_MESSAGE_BYTES = 1 << 20


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
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pacs-hl7")
        self.thread = threading.Thread(target=self.run, name="pacs-hl7-listener", daemon=True)
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        get_engine(self.database_url)  # the tables, made once before any message arrives
        self.thread.start()
        self.ready.wait(10)
        if self.error is not None:
            raise OSError(f"HL7 listener on {self.host}:{self.port}: {self.error}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.close_all)
            self.thread.join(timeout)
        self.executor.shutdown(wait=True)

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
                answer = await self.loop.run_in_executor(
                    self.executor, receive_message, self.database_url, message, peer
                )
                await self.send(writer, answer)
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def send(self, writer: HL7StreamWriter, answer: str) -> None:
        writer.writeblock(answer.encode("utf-8"))
        await writer.drain()

    async def reject(self, raw: bytes, peer: str, reason: str) -> str:
        rejection = MessageRejected(AckCode.REJECT, reason)
        now = datetime.datetime.now(datetime.UTC)
        return await self.loop.run_in_executor(
            self.executor,
            store_rejection,
            self.database_url,
            read_header_or_none(raw),
            raw,
            peer,
            now,
            rejection,
        )

    async def store_cut(self, partial: bytes, peer: str) -> None:
        raw = partial[1:] if partial.startswith(START_BLOCK) else partial
        log.warning("HL7 connection from %s closed in the middle of a message", peer)
        await self.reject(raw, peer, "connection closed in the middle of the message")
