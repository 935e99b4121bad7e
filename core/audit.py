"""The audit trail's hash chain: each event's link covers the previous link and the event."""

from __future__ import annotations

import hashlib
import json

# The first event's "previous link".
CHAIN_START = ""


def chain_audit_hash(previous_hash: str, fields: list[str]) -> str:
    """sha256 over the previous link and the event's canonical fields (JSON, so unambiguous)."""
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{previous_hash}\n{canonical}".encode()).hexdigest()
