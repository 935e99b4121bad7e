"""`pacs demo` places the demo department's orders (demo/orders.py) before its studies
arrive, through the listener's own path (stored, answered, applied once), and registers the
demo modalities for the worklist."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TextIO
from zoneinfo import ZoneInfo

from config.settings import Settings
from core.modalities import Modality
from demo.orders import UPCOMING, build_demo_order_messages
from demo.studies import DemoStudy
from storage.database import open_session
from storage.modalities import ensure_modality
from storage.orders import receive_message


def place_demo_orders(settings: Settings, studies: Sequence[DemoStudy], *, out: TextIO) -> int:
    """Returns how many orders were accepted (placed, or known already)."""
    now = datetime.datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)
    answers = [
        receive_message(settings.database_url, message, "pacs-demo")
        for message in build_demo_order_messages(studies, now)
    ]
    accepted = sum("MSA|AA|" in answer for answer in answers)
    registered_at = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        for modality, station, _, _ in UPCOMING:
            demo_modality = Modality(station, "127.0.0.1", 104, f"demo {modality} (worklist)")
            ensure_modality(session, demo_modality, registered_at)
    stations = ", ".join(station for _, station, _, _ in UPCOMING)
    out.write(
        f"demo: {accepted} of {len(answers)} orders placed or already known, "
        f"{len(UPCOMING)} of them scheduled later today (worklist for {stations} at 127.0.0.1)\n"
    )
    return accepted
