"""The upload page in a real browser (Debian's Chromium through Playwright), against a
real Orthanc: an admin uploads a ZIP and a text file, then drops files on the page, and
sees the summary. Screenshots land in test-artifacts/browser/."""

from __future__ import annotations

import base64
import datetime
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from config.settings import load_settings
from core.accounts import Role
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.archive import ArchiveClient
from tests.support.browser import TIMEOUT_MS, screenshot, serve_portal
from tests.support.databases import new_database
from tests.support.services import find_free_port
from tests.support.studies import clone_study
from tests.support.users import PASSWORD

pytestmark = pytest.mark.slow  # Chromium


@pytest.fixture(scope="module")
def portal_url(
    orthanc_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    database = tmp_path_factory.mktemp("import-browser") / "pacs.sqlite3"
    settings = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": new_database(database),
            "PACS_PORTAL_PORT": str(find_free_port()),
        }
    )
    app = create_app({"PACS_SETTINGS": settings})
    with app.app_context():
        now = datetime.datetime.now(datetime.UTC)
        create_user(db.session, "admin@example.org", PASSWORD, Role.ADMIN, now)
        db.session.commit()
    with serve_portal(app, settings.portal_port) as url:
        yield url


@pytest.fixture
def page(browser: Browser, portal_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=portal_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS * 3)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=email]", "admin@example.org")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    yield page
    context.close()


def dicom_bytes(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def counts_of(page: Page) -> dict[str, str]:
    return {
        item.get_attribute("class"): item.locator("strong").inner_text()
        for item in page.locator("ul.import-counts li").all()
    }


def test_admin_uploads_a_zip_and_sees_the_summary(
    page: Page, tmp_path: Path, archive: ArchiveClient
) -> None:
    ct = clone_study("CT", limit=3)
    bundle = tmp_path / "from-colleague.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        for number, ds in enumerate(ct):
            zf.writestr(f"study/{number}.dcm", dicom_bytes(ds))
        zf.writestr("../escape.dcm", dicom_bytes(ct[0]))
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")

    page.goto("/imports")
    assert page.locator("h1").inner_text() == "Import studies"
    assert page.locator("header.topbar").get_by_role("link", name="Import").count() == 1
    page.set_input_files("#files", [str(bundle), str(notes)])
    assert "2 files" in page.locator("#selection").inner_text()
    screenshot(page, "import-chosen")
    with page.expect_navigation(url="**/imports/*"):
        page.get_by_role("button", name="Import").click()

    assert counts_of(page) == {"stored": "3", "already": "0", "rejected": "2", "ignored": "0"}
    rows = page.locator("table.import-files tbody tr")
    outcomes = {
        row.locator("td").nth(0).inner_text(): row.locator("td").nth(2).inner_text()
        for row in rows.all()
    }
    assert outcomes["notes.txt"] == "not DICOM"
    assert "path traversal" in outcomes["from-colleague.zip:../escape.dcm"]
    studies = page.locator("table.import-studies tbody tr")
    assert studies.count() == 1
    assert studies.first.get_attribute("data-study-uid") == ct[0].StudyInstanceUID
    assert "waiting for ingestion" in studies.first.inner_text()
    screenshot(page, "import-summary")
    assert len(archive.find("Instance", {"StudyInstanceUID": ct[0].StudyInstanceUID})) == 3

    page.goto("/imports")
    assert page.locator("table.imports tbody tr").count() == 1


def test_files_dropped_on_the_page_are_imported(page: Page) -> None:
    [cr] = clone_study("CR", limit=1)
    page.goto("/imports")
    page.evaluate(
        """([dicom]) => {
            const bytes = Uint8Array.from(atob(dicom), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "xray.dcm"));
            transfer.items.add(new File(["just text"], "readme.txt"));
            const zone = document.getElementById("dropzone");
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        [base64.b64encode(dicom_bytes(cr)).decode()],
    )
    page.wait_for_function("document.getElementById('selection').textContent.includes('2 files')")
    with page.expect_navigation(url="**/imports/*"):
        page.get_by_role("button", name="Import").click()
    assert counts_of(page) == {"stored": "1", "already": "0", "rejected": "1", "ignored": "0"}
    screenshot(page, "import-dropped")
