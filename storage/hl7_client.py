"""Sending HL7 v2 messages over MLLP and reading the ACK (python-hl7's asyncio streams)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from hl7.mllp import open_hl7_connection


class Hl7SendError(OSError):
    """The peer could not be reached, or did not answer in time."""


def send_messages(
    host: str, port: int, messages: Sequence[bytes], *, timeout: float = 30.0
) -> list[bytes]:
    """Send each message (unframed bytes) on one connection, waiting for each answer in turn;
    returns the answers' bytes (unframed)."""
    exchanged = asyncio.wait_for(exchange(host, port, messages), timeout)
    try:
        # A loop of its own in a thread of its own: callers may be inside a running loop
        # (a server's, a browser driver's), where asyncio.run refuses to start.
        with ThreadPoolExecutor(max_workers=1) as thread:
            return thread.submit(asyncio.run, exchanged).result()
    except TimeoutError:
        raise Hl7SendError(f"no answer from {host}:{port} within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise Hl7SendError(f"nothing listens on {host}:{port} (connection refused)") from None
    except (OSError, asyncio.IncompleteReadError) as error:
        raise Hl7SendError(f"HL7 peer {host}:{port}: {error}") from None


def send_message(host: str, port: int, message: bytes, *, timeout: float = 30.0) -> bytes:
    return send_messages(host, port, [message], timeout=timeout)[0]


async def exchange(host: str, port: int, messages: Sequence[bytes]) -> list[bytes]:
    reader, writer = await open_hl7_connection(host, port)
    try:
        answers = []
        for message in messages:
            writer.writeblock(message)
            await writer.drain()
            answers.append(await reader.readblock())
        return answers
    finally:  # the library's writer is no async context manager
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def frame_segments(content: bytes) -> bytes:
    """A message as written in a file (segments on lines, any line ending, its own character
    set) as MLLP carries it: segments ended by CR, bytes unchanged."""
    lines = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return b"".join(line + b"\r" for line in lines if line.strip())
