"""The report editor in a real browser: a radiologist opens a study's report beside the
images, picks a template, types, lets autosave work, meets a second tab's conflict, signs
final through the confirmation dialog and adds an addendum; the SRs reach the archive.

Screenshots land in test-artifacts/browser/ (report-*.png).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from config.settings import load_settings
from core.accounts import Role, hash_password
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.models.reports import Report, ReportDocument
from tests.support.browser import TIMEOUT_MS, screenshot, serve_portal, sign_in
from tests.support.databases import new_database
from tests.support.reports import dciodvfy_errors, fetch_sr, ingest, store_study
from tests.support.services import find_free_port
from tests.support.users import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.requires("dciodvfy")]

NOW = datetime.datetime.now(datetime.UTC)
TYPED = " Ünïcödé: naïve café, Ωμέγα."


@dataclass
class Portal:
    app: Flask
    url: str
    study_uid: str


@pytest.fixture(scope="module")
def portal(
    tmp_path_factory: pytest.TempPathFactory, orthanc_env: dict[str, str]
) -> Iterator[Portal]:
    """The portal on a loopback port, on the session's Orthanc, with one CR chest study."""
    folder = tmp_path_factory.mktemp("report-browser")
    settings = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": new_database(folder / "pacs.sqlite3"),
            "PACS_PORTAL_PORT": str(find_free_port()),
        }
    )
    app = create_app({"PACS_SETTINGS": settings})
    password_hash = hash_password(PASSWORD)
    with app.app_context():
        for email, role, name in (
            ("radiologist@example.org", Role.RADIOLOGIST, "Inès Lefèvre"),
            ("referrer@example.org", Role.REFERRER, ""),
        ):
            user = create_user(db.session, email, PASSWORD, role, NOW, display_name=name)
            user.password_hash = password_hash
        db.session.commit()
    with ArchiveClient.from_settings(settings) as archive:
        study_uid, orthanc_id, _ = store_study(archive, PatientName="Søndergård^Åsa")
        ingest(app, archive, orthanc_id)
    with serve_portal(app, settings.portal_port) as url:
        yield Portal(app, url, study_uid)


@pytest.fixture
def page(browser: Browser, portal: Portal) -> Iterator[Page]:
    context = browser.new_context(base_url=portal.url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()
    assert not dialogs, f"a JavaScript dialog fired: {dialogs}"


def saved_findings(portal: Portal) -> str:
    with portal.app.app_context():
        report = db.session.scalar(select(Report))
        return report.sections["findings"] if report else ""


def test_radiologist_writes_signs_and_amends_a_report(
    page: Page, portal: Portal, archive: ArchiveClient
) -> None:
    sign_in(page, "radiologist@example.org")
    page.goto(f"/studies/{portal.study_uid}")
    with page.expect_navigation():
        page.locator("#edit-report").click()
    assert page.url.endswith(f"/studies/{portal.study_uid}/report/edit")

    images = page.get_by_role("link", name="Open images")
    assert images.get_attribute("href") == f"/viewer/viewer?StudyInstanceUIDs={portal.study_uid}"
    assert images.get_attribute("target") == "pacs-viewer"  # a named window beside the editor

    # The suggested template for a CR chest, chosen: it fills the sections and saves at once.
    suggested = page.locator("#template-select option[data-suggested]")
    assert suggested.get_attribute("value") == "xr-chest"
    page.select_option("#template-select", "xr-chest")
    technique = page.locator("#section-technique")
    expect(technique).to_have_value("PA and lateral chest radiographs.")
    expect(page.locator("#save-status")).to_contain_text("version 1")
    expect(page.locator("#report-status")).to_have_text("DRAFT")

    # Typing is saved by the autosave timer, without any click.
    findings = page.locator("#section-findings")
    findings.press("End")
    findings.press("Control+End")
    findings.type(TYPED)
    expect(page.locator("#save-status")).to_contain_text("version 2")
    assert saved_findings(portal).endswith(TYPED)
    screenshot(page, "report-editor-autosaved")

    # A second tab with the old version: its save is refused with a clear message.
    other = page.context.new_page()
    other.goto(f"/studies/{portal.study_uid}/report/edit")
    findings.type(" More.")
    expect(page.locator("#save-status")).to_contain_text("version 3")
    other.locator("#section-impression").type(" From the other tab.")
    expect(other.locator("#report-message")).to_contain_text("changed elsewhere")
    screenshot(other, "report-editor-conflict")
    other.close()
    assert "From the other tab" not in saved_findings(portal)
    assert saved_findings(portal).endswith(TYPED + " More.")

    # Signing asks first; cancelling signs nothing.
    page.get_by_role("button", name="Sign final").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("cannot be changed afterwards")
    screenshot(page, "report-sign-confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#report-status")).to_have_text("DRAFT")

    page.get_by_role("button", name="Sign final").click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Sign final").click()
    expect(page.locator("#report-status")).to_have_text("FINAL")
    signatures = page.locator("ul.signatures")
    expect(signatures).to_contain_text("Final signed by Lefèvre, Inès")
    expect(signatures).to_contain_text("archived")  # "archiving…" until the SR is in
    assert page.locator("#report-form").count() == 0, "a final report offers no editing"
    screenshot(page, "report-final")

    page.fill("#addendum-text", "Addendum: rib fracture, left 6th rib — überprüft.")
    page.get_by_role("button", name="Sign addendum").click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Sign addendum").click()
    expect(page.locator("section.addendum")).to_contain_text("rib fracture, left 6th rib")
    expect(page.locator("ul.signatures li")).to_have_count(2)
    expect(page.locator("ul.signatures")).not_to_contain_text("archiving…")
    screenshot(page, "report-addendum")

    # The clean read page and its PDF.
    page.goto(f"/studies/{portal.study_uid}/report")
    text = page.locator("article").inner_text()
    assert "FINAL" in text and TYPED.strip() in text and "rib fracture" in text
    pdf = page.request.get(f"/studies/{portal.study_uid}/report.pdf")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    screenshot(page, "report-read-page")

    # Both signed documents are in the archive, valid, the addendum referencing the final.
    with portal.app.app_context():
        documents = db.session.scalars(
            select(ReportDocument).order_by(ReportDocument.sequence)
        ).all()
        assert [d.kind for d in documents] == ["final", "addendum"]
        uids = [(d.series_instance_uid, d.sop_instance_uid) for d in documents]
    for series_uid, sop_uid in uids:
        part10 = fetch_sr(archive, portal.study_uid, series_uid, sop_uid)
        assert dciodvfy_errors(part10) == []
        assert re.search(rb"rib fracture|Lungs", part10)
