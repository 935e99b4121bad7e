"""The order services' settings (ports, the listener turned off, the worklist's AE title)
and `pacs orders serve`, which runs them alone."""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from sqlalchemy import select

from config.settings import SettingsError, load_settings
from core.hl7_messages import read_ack
from core.modalities import Modality
from storage.database import open_session
from storage.hl7_client import send_message
from storage.modalities import ensure_modality
from storage.models.orders import Order
from tests.support.orders import NOW, make_order, order_message
from tests.support.services import PACS_COMMAND, make_env, run_pacs


def test_defaults(tmp_path) -> None:
    settings = load_settings({"PACS_HOME": str(tmp_path)})
    assert (settings.hl7_port, settings.mwl_port, settings.mwl_aet) == (2575, 4243, "ORTHANC")
    assert settings.hl7_results_host == ""


def test_the_worklist_title_follows_the_archives_unless_given(tmp_path) -> None:
    env = {"PACS_HOME": str(tmp_path), "PACS_ORTHANC_AET": "ARCHIVE"}
    assert load_settings(env).mwl_aet == "ARCHIVE"
    assert load_settings({**env, "PACS_MWL_AET": "WORKLIST"}).mwl_aet == "WORKLIST"


def test_zero_turns_the_listener_off_but_not_the_worklist(tmp_path) -> None:
    home = {"PACS_HOME": str(tmp_path)}
    assert load_settings({**home, "PACS_HL7_PORT": "0"}).hl7_port == 0
    with pytest.raises(SettingsError, match="PACS_MWL_PORT"):
        load_settings({**home, "PACS_MWL_PORT": "0"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PACS_HL7_PORT", "70000"),
        ("PACS_HL7_PORT", "mllp"),
        ("PACS_HL7_RESULTS_PORT", "-1"),
        ("PACS_MWL_AET", "A-TITLE-FAR-TOO-LONG"),
    ],
)
def test_bad_values_are_named(tmp_path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({"PACS_HOME": str(tmp_path), name: value})


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.slow
def test_pacs_orders_serve_answers_hl7_and_the_worklist_until_sigterm(tmp_path: Path) -> None:
    """The scaled-out shape (docker-compose's order-services): both ports, a real order
    acknowledged once committed, a C-ECHO from a registered modality, and a clean stop."""
    env = make_env(tmp_path)
    database_url = f"sqlite:///{tmp_path / 'pacs.sqlite3'}"
    with open_session(database_url) as session:
        ensure_modality(
            session, Modality("ECHOSCU", "127.0.0.1", 104), NOW.replace(tzinfo=datetime.UTC)
        )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    process = subprocess.Popen(
        [str(PACS_COMMAND), "orders", "serve"],
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        hl7_port, mwl_port = int(env["PACS_HL7_PORT"]), int(env["PACS_MWL_PORT"])
        wait_for_port(hl7_port, process)
        wait_for_port(mwl_port, process)
        answer = send_message(
            "127.0.0.1", hl7_port, order_message(make_order(7), control_id="SERVE1"), timeout=30
        )
        assert read_ack(answer).code == "AA"
        with open_session(database_url) as session:
            assert session.scalar(select(Order.accession_number)) == "ACC7"
        ae = AE("ECHOSCU")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", mwl_port, ae_title="ORTHANC")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"HL7 listener (MLLP) on port {hl7_port}" in out
    assert "pacs: stopping the order services" in out


def test_pacs_orders_serve_refuses_a_database_behind_its_schema(tmp_path: Path) -> None:
    empty = tmp_path / "old.sqlite3"
    empty.touch()
    env = make_env(tmp_path, PACS_DATABASE_URL=f"sqlite:///{empty}")
    result = run_pacs(env, "orders", "serve")
    assert result.returncode == 1
    assert "pacs db upgrade" in result.stderr
    assert "Traceback" not in result.stderr, "one line, not a crash while stopping"
