"""`pacs portal`: the portal under gunicorn, as the scaled-out platform runs it."""

from __future__ import annotations

import http.client
import subprocess
import time
from pathlib import Path

from tests.support.services import PACS_COMMAND, make_env, wait_for_http


def test_a_connection_idle_between_two_clicks_is_still_open(tmp_path: Path) -> None:
    """A user's browser keeps its connection between clicks. gunicorn's own default closes
    it after 2 s idle, and a request sent as it closes fails with a reset (the load
    benchmark's "connection reset by peer" errors)."""
    env = make_env(tmp_path, PACS_PORTAL_WORKERS="1")
    port = int(env["PACS_PORTAL_PORT"])
    portal = subprocess.Popen(
        [str(PACS_COMMAND), "portal"],
        env={"PATH": "/usr/bin:/bin", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/login", timeout=60)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for pause in (0, 5):
            time.sleep(pause)
            connection.request("GET", "/login")
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
            assert answer.getheader("Connection", "").lower() != "close"
        connection.close()
    finally:
        portal.terminate()
        portal.wait(timeout=30)
