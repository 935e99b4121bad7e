"""The first hour, as a new user lives it: `pacs up --demo` from an empty PACS_HOME.

Each role's first page shows real content (screenshots in test-artifacts/browser/), a
signature reaches the dashboards within seconds (the warehouse's schedule is an hour here, so
only the refresh the signature asks for can explain it), and the console stays quiet while
the log file has the detail. Figures (the demo's duration, signature -> dashboard) are
written to test-artifacts/first-hour.txt.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page

from config.settings import Settings, load_settings
from tests.support.browser import ARTIFACTS, TIMEOUT_MS, screenshot, sign_in
from tests.support.services import PACS_COMMAND, make_env

pytestmark = pytest.mark.slow  # pacs up --demo with Orthanc, Prefect, the portal; Chromium

FIGURES = ARTIFACTS.parent / "first-hour.txt"
READY_TIMEOUT = 600.0  # the whole demo takes under a minute; a machine under load, longer
ROLES = ("admin", "radiologist", "referrer", "manager", "researcher")


@dataclass
class Platform:
    settings: Settings
    process: subprocess.Popen
    output_path: Path
    passwords: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    output: str = ""

    def read_output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def stop(self) -> str:
        """SIGTERM, as Ctrl-C would; returns everything it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)
        self.output = self.read_output()
        return self.output

    def token(self, role: str) -> dict[str, str]:
        """A bearer token per role, asked once (a sign-in costs a bcrypt check)."""
        if role in self.tokens:
            return self.tokens[role]
        response = requests.post(
            f"{self.settings.portal_url}/api/v1/auth/token",
            json={"email": f"{role}@demo.example", "password": self.passwords[role]},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        self.tokens[role] = {"Authorization": f"Bearer {response.json()['token']}"}
        return self.tokens[role]

    def api(self, role: str, path: str, **params: str) -> requests.Response:
        return requests.get(
            f"{self.settings.portal_url}/api/v1{path}",
            params=params,
            headers=self.token(role),
            timeout=30,
        )


def wait_until(check, timeout: float, what: str, process: subprocess.Popen) -> float:
    """Poll `check` until true; returns the seconds it took."""
    started = time.monotonic()
    while not check():
        assert process.poll() is None, f"pacs up exited while waiting for {what}"
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.25)
    seconds = time.monotonic() - started
    assert seconds < timeout, f"{what}: {seconds:.1f} s, not within {timeout} s"
    return seconds


def record_figure(line: str) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as handle:
        handle.write(
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} (load {os.getloadavg()[0]:.1f}) {line}\n"
        )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("first-hour")
    env = make_env(home, PACS_WAREHOUSE_REFRESH_EVERY="3600")
    settings = load_settings(env)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PACS_", "PREFECT_"))}
    output_path = home / "console.txt"
    with output_path.open("w") as output:
        process = subprocess.Popen(
            [str(PACS_COMMAND), "up", "--demo"],
            env={**clean, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    platform = Platform(settings, process, output_path)
    try:
        wait_until(
            lambda: "pacs: portal on" in platform.read_output(),
            READY_TIMEOUT,
            "the demo and the portal",
            process,
        )
        printed = platform.read_output()
        for role in ROLES:
            found = re.search(rf"^\s+{role}\s+{role}@demo\.example\s+(\S+)$", printed, re.M)
            assert found, printed
            platform.passwords[role] = found.group(1)
        demo = re.search(r"demo: ready in ([\d.]+) s", printed)
        assert demo, printed
        record_figure(f"pacs up --demo: the demo took {demo.group(1)} s")
        yield platform
    finally:
        platform.stop()


def turnaround_count(platform: Platform) -> int:
    response = platform.api("manager", "/analytics/turnaround", group_by="modality")
    if response.status_code == 404:  # no warehouse yet
        return 0
    assert response.status_code == 200, response.text
    return sum(item["count"] for item in response.json()["items"])


def export_done(platform: Platform) -> bool:
    items = platform.api("researcher", "/exports").json()["items"]
    return any(item["state"] == "done" for item in items)


def quarantined(platform: Platform) -> list[dict]:
    return platform.api("admin", "/quarantine").json()["items"]


@pytest.fixture(scope="module")
def settled(platform: Platform) -> Platform:
    """The demo's history on the dashboards, its export finished, its two bad studies held."""
    wait_until(lambda: turnaround_count(platform) > 100, 300, "the dashboards", platform.process)
    wait_until(lambda: export_done(platform), 300, "the research export", platform.process)
    wait_until(lambda: len(quarantined(platform)) == 2, 300, "the quarantine", platform.process)
    return platform


@pytest.fixture
def page(browser: Browser, settled: Platform) -> Iterator[Page]:
    context = browser.new_context(
        base_url=settled.settings.portal_url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS * 3)
    page = context.new_page()
    yield page
    context.close()


def points_of(page: Page, chart: str) -> int:
    """How many plotted values the chart holds (0 when it says it has no data)."""
    return page.evaluate(
        f"""(document.getElementById('chart-{chart}').data || [])
            .flatMap(t => t.y || []).filter(v => v !== null && v !== 0).length"""
    )


def test_the_manager_lands_on_dashboards_with_data(page: Page, settled: Platform) -> None:
    sign_in(page, "manager@demo.example", settled.passwords["manager"])
    assert page.url.endswith("/analytics")
    page.wait_for_selector("body[data-analytics-loaded]")
    assert points_of(page, "turnaround_modality") > 0
    assert points_of(page, "turnaround_priority") > 0
    assert points_of(page, "backlog") > 0
    legend = page.evaluate(
        "document.getElementById('chart-turnaround_priority').data.map(t => t.name)"
    )
    assert {"STAT p50", "URGENT p50", "ROUTINE p50"} <= set(legend)
    assert page.locator("#breaches tbody tr").count() > 0  # some work breached its target
    screenshot(page, "first-hour-manager")


def test_the_researcher_lands_on_an_export_to_download(page: Page, settled: Platform) -> None:
    sign_in(page, "researcher@demo.example", settled.passwords["researcher"])
    assert page.url.endswith("/research")
    link = page.get_by_role("link", name="Download ZIP")
    assert link.count() == 1
    with page.expect_download() as download:
        link.click()
    path = download.value.path()
    assert path is not None and Path(path).read_bytes()[:2] == b"PK"
    screenshot(page, "first-hour-researcher")


def test_the_referrer_lands_on_final_reports_to_read(page: Page, settled: Platform) -> None:
    sign_in(page, "referrer@demo.example", settled.passwords["referrer"])
    assert page.url.endswith("/referrals")
    reports = page.locator("a", has_text=re.compile(r"^(final|amended) report$"))
    assert reports.count() > 10
    screenshot(page, "first-hour-referrer")
    reports.first.click()
    page.wait_for_selector("section.report-section")
    text = page.locator("article.report-page").inner_text()
    assert "Department of Radiology" in text  # the letterhead
    assert "impression" in text.lower()
    study_line = page.locator("dl.report-facts dd").nth(1).inner_text()
    modality = study_line.split()[0]
    assert not study_line.startswith(f"{modality} {modality} "), study_line
    screenshot(page, "first-hour-referrer-report")


@pytest.mark.parametrize("role", ["radiologist", "admin"])
def test_readers_land_on_a_worklist_with_work(page: Page, settled: Platform, role: str) -> None:
    sign_in(page, f"{role}@demo.example", settled.passwords[role])
    assert page.url.endswith("/worklist")
    assert page.locator("table.worklist tbody tr").count() > 10
    screenshot(page, f"first-hour-{role}")


def test_the_history_has_every_status_and_two_quarantined_studies(settled: Platform) -> None:
    statuses = {
        status: settled.api("admin", "/studies", status=status, per_page="1").json()["total"]
        for status in ("received", "in_progress", "preliminary", "final", "amended")
    }
    assert all(count > 0 for count in statuses.values()), statuses
    reasons = {reason["code"] for entry in quarantined(settled) for reason in entry["reasons"]}
    assert reasons == {"INVALID_STUDY_DATE", "MODALITY_NOT_ALLOWED"}


def test_a_signature_reaches_the_dashboards_within_seconds(settled: Platform) -> None:
    radiologist = settled.token("radiologist")
    studies = requests.get(
        f"{settled.settings.portal_url}/api/v1/studies",
        params={"status": "received", "per_page": "1"},
        headers=radiologist,
        timeout=30,
    ).json()["items"]
    url = f"{settled.settings.portal_url}/api/v1/studies/{studies[0]['study_instance_uid']}/report"
    draft = {"findings": "No acute abnormality.", "impression": "Normal study."}
    saved = requests.put(url, json=draft, headers={**radiologist, "If-Match": '"0"'}, timeout=30)
    assert saved.status_code == 200, saved.text
    before = turnaround_count(settled)
    signed = requests.post(
        f"{url}/finalize", headers={**radiologist, "If-Match": saved.headers["ETag"]}, timeout=30
    )
    assert signed.status_code == 201, signed.text
    seconds = wait_until(
        lambda: turnaround_count(settled) == before + 1, 10, "the signature", settled.process
    )
    record_figure(f"signature -> dashboards: {seconds:.1f} s")


def test_the_console_is_quiet_and_the_log_has_the_detail(settled: Platform) -> None:
    output = settled.stop()
    assert settled.process.returncode == 0, output
    assert "Traceback" not in output
    assert not re.search(r"Task run '|Flow run '|\| INFO ", output), output
    for line in (
        "pacs: Orthanc started",
        "pacs: Prefect UI on http://127.0.0.1:",
        "demo: ready in",
    ):
        assert line in output, output
    assert "Error logging to API" not in output
    log = (settled.settings.home / "logs" / "pacs.log").read_text()
    assert re.search(r"Task run '[^']+' - Finished in state Completed", log)
    assert re.search(r"Flow run '[^']+' - Beginning flow run", log)
