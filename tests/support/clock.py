"""Injected time for the portal: tests move the clock instead of sleeping."""

from __future__ import annotations

import datetime
import sys

import pytest


def stop_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime.datetime) -> None:
    """The portal's clock (`utc_now`, in every portal module that imported it) shows `moment`."""
    for name, module in list(sys.modules.items()):
        if name.startswith("portal") and callable(getattr(module, "utc_now", None)):
            monkeypatch.setattr(module, "utc_now", lambda: moment)
