"""The worklist driven from the keyboard and kept current, in Chromium, on the real archive and
the embedded pipeline (the `portal` fixture, as `pacs up` runs them):

- a radiologist moves through a filtered list, opens a study, its images, its report editor,
  takes it, saves and signs with the keyboard, and lands on the next unread study of the same
  list (its filters in the URL all along); keys do nothing while typing;
- a study sent to the archive while the worklist is open appears on it within seconds, the
  filters, the page and the selected row untouched.

Screenshots land in test-artifacts/browser/ (keyboard-*.png).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from config.settings import Settings
from core.accounts import Role
from pacs.pipeline import EmbeddedPipeline
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.models.studies import Study
from tests.support.browser import TIMEOUT_MS, screenshot, sign_in
from tests.support.pipeline import upload, wait_for_study
from tests.support.studies import clone_study
from tests.support.users import PASSWORD

pytestmark = pytest.mark.slow  # Chromium, Orthanc, the pipeline

NOW = datetime.datetime.now(datetime.UTC)
ARRIVAL_TIMEOUT_MS = 45_000  # stable age (2 s) + ingestion + one poll (5 s), under load


def send_study(settings: Settings, name: str, index: int, modality: str = "CR") -> str:
    """A study of `modality` for patient `name`, stored in the archive; returns its UID once the
    pipeline has put it on the worklist."""
    datasets = clone_study(
        modality,
        PatientName=name,
        PatientID=f"KEY{index:04d}",
        AccessionNumber=f"KEYACC{index:04d}",
    )
    upload(settings, datasets)
    return wait_for_study(settings, datasets[0].StudyInstanceUID).study_instance_uid


@dataclass
class Studies:
    family: str  # the patients' family name, new for each test (the archive is the session's)
    uids: list[str]  # the CR studies, oldest first

    @property
    def list(self) -> str:
        """The filtered list of the test: its CR studies, oldest first."""
        return f"modality=CR&q={self.family}&sort=received_at&order=asc"


@pytest.fixture
def studies(pipeline_settings: Settings, portal: EmbeddedPipeline, password_hash: str) -> Studies:
    """A radiologist, and three CR studies and one MR of one family on the worklist."""
    app = create_app({"PACS_SETTINGS": pipeline_settings})
    with app.app_context():
        user = create_user(db.session, "radiologist@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
        user.password_hash = password_hash
        user.display_name = "Keyboard^Kim"
        db.session.commit()
    family = f"Keys{secrets.token_hex(3)}"
    uids = [send_study(pipeline_settings, f"{family}^Patient{i}", i) for i in range(3)]
    send_study(pipeline_settings, f"{family}^Other Modality", 3, "MR")
    return Studies(family, uids)


@pytest.fixture
def page(browser: Browser, pipeline_settings: Settings) -> Iterator[Page]:
    context = browser.new_context(
        base_url=f"http://127.0.0.1:{pipeline_settings.portal_port}",
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def selected_uid(page: Page) -> str:
    return page.locator("tr[data-study-uid].selected").get_attribute("data-study-uid")


def list_of(page: Page) -> dict[str, list[str]]:
    query = parse_qs(urlsplit(page.url).query)
    return {key: query[key] for key in ("modality", "q", "sort", "order") if key in query}


def status_of(settings: Settings, study_uid: str) -> str:
    app = create_app({"PACS_SETTINGS": settings})
    with app.app_context():
        return db.session.scalar(select(Study.status).where(Study.study_instance_uid == study_uid))


def test_keyboard_open_take_report_sign_and_next(
    page: Page, studies: Studies, pipeline_settings: Settings
) -> None:
    first, second, third = studies.uids
    wanted = parse_qs(studies.list)
    sign_in(page, "radiologist@example.org")
    page.goto(f"/worklist?{studies.list}")
    rows = page.locator("tr[data-study-uid]")
    expect(rows).to_have_count(3)  # the MR study is not in this list
    assert selected_uid(page) == first

    # Moving through the rows; the selection is shown and announced (aria-current).
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    assert selected_uid(page) == third
    page.keyboard.press("k")
    page.keyboard.press("k")
    assert selected_uid(page) == first
    expect(page.locator("tr.selected")).to_have_attribute("aria-current", "true")

    # The help overlay lists the keys; Esc closes it.
    page.keyboard.press("?")
    help_overlay = page.locator("#keys-help")
    expect(help_overlay).to_be_visible()
    expect(help_overlay).to_contain_text("open its report editor")
    screenshot(page, "keyboard-worklist-help")
    page.keyboard.press("Escape")
    expect(help_overlay).to_be_hidden()

    # Keys do not fire while typing: "j" in the search box is a letter, not a move.
    page.keyboard.press("/")
    expect(page.locator("input[name=q]")).to_be_focused()
    page.keyboard.press("End")
    page.keyboard.type("jk")
    assert selected_uid(page) == first
    expect(page.locator("input[name=q]")).to_have_value(studies.family + "jk")
    page.keyboard.press("Escape")  # leaves the field
    page.fill("input[name=q]", studies.family)
    page.locator("h1").click()

    # "i" opens the images in the viewer's own window.
    with page.context.expect_page() as viewer:
        page.keyboard.press("i")
    viewer.value.wait_for_url(f"**StudyInstanceUIDs={first}", wait_until="commit")
    viewer.value.close()

    # "t" takes the selected study; the list and the selection survive the round trip.
    with page.expect_navigation():
        page.keyboard.press("t")
    assert list_of(page) == wanted
    assert selected_uid(page) == first
    expect(page.locator("tr.selected")).to_contain_text("radiologist@example.org")

    # Enter opens the study; "r" its report editor; the list travels in the URL.
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert urlsplit(page.url).path == f"/studies/{first}" and list_of(page) == wanted
    with page.expect_navigation():
        page.keyboard.press("r")
    assert urlsplit(page.url).path == f"/studies/{first}/report/edit"
    assert list_of(page) == wanted

    # In the editor: type, Ctrl+S saves, Ctrl+Enter signs after a confirmation (Enter).
    page.locator("#section-findings").click()
    page.keyboard.type("No acute cardiopulmonary abnormality.")
    page.keyboard.press("Control+s")
    expect(page.locator("#save-status")).to_contain_text("version 1")
    page.keyboard.press("Control+Enter")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("FINAL")
    screenshot(page, "keyboard-sign-confirmation")
    with page.expect_navigation():
        page.keyboard.press("Enter")

    # Straight to the next unread study of the same list.
    assert urlsplit(page.url).path == f"/studies/{second}/report/edit"
    assert list_of(page) == wanted
    assert status_of(pipeline_settings, first) == "final"
    screenshot(page, "keyboard-next-study")

    # "n" skips to the one after without signing; "u" goes back to the list, still filtered.
    with page.expect_navigation():
        page.keyboard.press("n")
    assert urlsplit(page.url).path == f"/studies/{third}/report/edit"
    with page.expect_navigation():
        page.keyboard.press("u")
    assert urlsplit(page.url).path == "/worklist" and list_of(page) == wanted
    expect(page.locator(f'tr[data-study-uid="{first}"]')).to_contain_text("final")


def test_worklist_shows_a_new_study_without_losing_filter_page_or_selection(
    page: Page, studies: Studies, pipeline_settings: Settings
) -> None:
    sign_in(page, "radiologist@example.org")
    page.goto(f"/worklist?{studies.list}&per_page=25")
    expect(page.locator("tr[data-study-uid]")).to_have_count(3)
    page.keyboard.press("j")
    chosen = selected_uid(page)
    url = page.url

    arrived = send_study(pipeline_settings, f"{studies.family}^Arrived While Open", 10)
    send_study(pipeline_settings, f"{studies.family}^Arrived Other Modality", 11, "MR")
    row = page.locator(f'tr[data-study-uid="{arrived}"]')
    expect(row).to_be_visible(timeout=ARRIVAL_TIMEOUT_MS)
    expect(page.locator("#worklist-news")).to_contain_text("1 new study")
    screenshot(page, "keyboard-worklist-live-update")

    assert page.url == url, "no navigation: the filters and the page are those of the URL"
    expect(page.locator("tr[data-study-uid]")).to_have_count(4)  # still CR only
    expect(page.locator("select[name=modality]")).to_have_value("CR")
    assert selected_uid(page) == chosen
    page.keyboard.press("j")  # the keys still work on the new rows
    assert selected_uid(page) != chosen
