"""In Chromium: a radiologist scores a colleague's prior and makes a teaching case of the
study they read; a researcher finds the case and opens its images in the viewer."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import select

from config.settings import load_settings
from core.accounts import Role, hash_password
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.models.peer_review import PeerReview
from storage.models.studies import Study
from storage.models.teaching import TeachingCase
from tests.support.browser import TIMEOUT_MS, screenshot, serve_portal, sign_in
from tests.support.databases import new_database
from tests.support.peer_review import add_final_report
from tests.support.pipeline import upload
from tests.support.reports import ingest
from tests.support.services import find_free_port
from tests.support.studies import clone_study
from tests.support.users import PASSWORD
from tests.support.viewer import VIEWER_TIMEOUT_MS, open_largest_series, wait_for_image

pytestmark = [pytest.mark.slow, pytest.mark.requires("chromium")]
NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class Site:
    app: Flask
    url: str
    prior_uid: str
    current_uid: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, orthanc_env: dict[str, str]) -> Iterator[Site]:
    """The portal on a loopback port and the session's archive; one patient's two CR studies,
    the older reported final by a colleague."""
    folder = tmp_path_factory.mktemp("teaching-browser")
    base = load_settings(orthanc_env)
    settings = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": new_database(folder / "pacs.sqlite3"),
            "PACS_HOME": str(folder / "home"),
            "PACS_ORTHANC_PASSWORD": base.orthanc_password,
            "PACS_ORTHANC_VIEWER_PASSWORD": base.orthanc_viewer_password,
            "PACS_PORTAL_PORT": str(find_free_port()),
        }
    )
    app = create_app({"PACS_SETTINGS": settings})
    password_hash = hash_password(PASSWORD)
    prior = clone_study("CR", StudyDate="20240102")
    current = clone_study("CR")
    upload(settings, prior + current)
    with app.app_context():
        for email, role in (
            ("radiologist@example.org", Role.RADIOLOGIST),
            ("colleague@example.org", Role.RADIOLOGIST),
            ("researcher@example.org", Role.RESEARCHER),
        ):
            create_user(db.session, email, PASSWORD, role, NOW).password_hash = password_hash
        db.session.commit()
    with ArchiveClient.from_settings(settings) as archive:
        for datasets in (prior, current):
            ingest(app, archive, archive.find_study_ids(datasets[0].StudyInstanceUID)[0])
    with app.app_context():
        study = db.session.scalar(
            select(Study).where(Study.study_instance_uid == prior[0].StudyInstanceUID)
        )
        add_final_report(db.session, study, "colleague@example.org", NOW)
        db.session.commit()
    with serve_portal(app, settings.portal_port) as url:
        yield Site(app, url, prior[0].StudyInstanceUID, current[0].StudyInstanceUID)


def test_a_radiologist_scores_a_prior_and_shares_a_case_a_researcher_opens(
    browser, site: Site
) -> None:
    context = browser.new_context(base_url=site.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        assert sign_in(page, "radiologist@example.org") == 200
        page.goto(f"/studies/{site.current_uid}")
        prior = page.locator(f"li[data-peer-prior-uid='{site.prior_uid}']")
        prior.locator("select[name=score]").select_option("2a")
        prior.locator("input[name=comment]").fill("A small nodule, visible in hindsight")
        with page.expect_navigation():
            prior.get_by_role("button", name="Score").click()
        expect(page.locator(".flash")).to_contain_text("Score 2a recorded")
        expect(prior).to_contain_text("scored 2a")
        screenshot(page, "peer-review-scored")

        with page.expect_navigation():
            page.locator("#new-teaching-case").click()
        form = page.locator("#teaching-form")
        form.locator("input[name=title]").fill("Lobar pneumonia on a two-view chest")
        form.locator("input[name=diagnosis]").fill("Lobar pneumonia")
        form.locator("textarea[name=findings]").fill("Dense right upper lobe consolidation.")
        form.locator("input[name=keywords]").fill("consolidation, silhouette sign")
        form.locator("input[name=series]").first.check()
        with page.expect_navigation():
            form.get_by_role("button", name="Create the teaching case").click()
        expect(page.locator(".flash")).to_contain_text("Teaching case created")
        screenshot(page, "teaching-case-created")
    finally:
        context.close()

    context = browser.new_context(base_url=site.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        assert sign_in(page, "researcher@example.org") == 200
        page.goto("/teaching")
        page.locator("#teaching-search input[name=keyword]").fill("Silhouette sign")
        with page.expect_navigation():
            page.locator("#teaching-search").get_by_role("button", name="Search").click()
        rows = page.locator("table.teaching-cases tbody tr[data-case-id]")
        expect(rows).to_have_count(1)
        with page.expect_navigation():
            rows.first.get_by_role("link", name="Lobar pneumonia on a two-view chest").click()
        expect(page.locator(".findings")).to_have_text("Dense right upper lobe consolidation.")
        with context.expect_page() as opened:
            page.locator("#open-teaching-images").click()
        images = opened.value
        images.wait_for_selector("canvas.cornerstone-canvas", timeout=VIEWER_TIMEOUT_MS)
        open_largest_series(images)
        wait_for_image(images)
        screenshot(images, "teaching-case-in-viewer", full_page=False)
    finally:
        context.close()

    with site.app.app_context():
        review = db.session.scalar(select(PeerReview))
        assert (review.score, review.source) == ("2a", "reading")
        case = db.session.scalar(select(TeachingCase))
        assert case.state == "ready" and case.keywords == "consolidation, silhouette sign"
