"""`pacs hl7 send FILE`: send an HL7 v2 message over MLLP and print the ACK."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from config.settings import Settings
from core.hl7_messages import MessageRejected, read_ack
from storage.hl7_client import frame_segments, send_message


class Hl7CommandError(ValueError):
    """The message cannot be sent as asked (no such file, no port)."""


def run_send(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when the answer is AA (or CA), 1 otherwise; the answer is printed either way."""
    port = args.port or settings.hl7_port
    if not port:
        raise Hl7CommandError("PACS_HL7_PORT is 0 (listener off): give --port")
    try:
        content = Path(args.file).read_bytes()
    except OSError as error:
        raise Hl7CommandError(f"cannot read {args.file}: {error.strerror}") from None
    if not content.strip():
        raise Hl7CommandError(f"{args.file} is empty")
    answer = send_message(args.host, port, frame_segments(content), timeout=args.timeout)
    sys.stdout.write(answer.decode("utf-8", errors="replace").replace("\r", "\n"))
    try:
        ack = read_ack(answer)
    except MessageRejected as error:
        print(f"pacs: the answer is no ACK: {error}", file=sys.stderr)
        return 1
    if ack.code not in ("AA", "CA"):
        print(f"pacs: {ack.code}: {ack.text}", file=sys.stderr)
        return 1
    return 0


def add_hl7_parser(commands: Any) -> None:
    hl7 = commands.add_parser("hl7", help="HL7 v2 messages (orders in, results out)")
    actions = hl7.add_subparsers(dest="action", required=True, metavar="ACTION")
    send = actions.add_parser("send", help="send an HL7 v2 message over MLLP and print the ACK")
    send.add_argument("file", metavar="FILE", help="the message, one segment a line")
    send.add_argument("--host", default="127.0.0.1", help="listener address (127.0.0.1)")
    send.add_argument("--port", type=int, default=0, help="listener port (PACS_HL7_PORT)")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the ACK")
    send.set_defaults(handler=run_send)
