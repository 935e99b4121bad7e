"""Compare in a real browser: the study page (or a referrer's report page) lists a prior,
Compare opens both studies side by side in OHIF through the portal's proxy, and the two
viewports show pixels of two different studies."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

import numpy as np
import pytest
from PIL import Image
from pydicom.uid import generate_uid
from sqlalchemy import select

from config.settings import Settings, load_settings
from core.accounts import Role
from core.ingest import assess_study
from core.records import StudyStatus
from portal import create_app
from portal.extensions import db
from portal.viewer.bundle import read_installed_version
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.models.reports import Report
from storage.models.studies import Study
from storage.studies import save_assessment
from tests.support.browser import screenshot, serve_portal, sign_in
from tests.support.databases import new_database
from tests.support.reports import part10_of
from tests.support.services import find_free_port
from tests.support.studies import clone_study
from tests.support.users import PASSWORD

NOW = datetime.datetime.now(datetime.UTC)
VIEWER_TIMEOUT_MS = 60_000
REFERRER = "Referrer^Rita"


@dataclass
class ComparePortal:
    url: str
    settings: Settings
    current: str  # CT of today
    prior: str  # MR of the same patient, a month ago


@pytest.fixture(scope="module")
def compare_portal(
    orthanc_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComparePortal]:
    home = tmp_path_factory.mktemp("priors-browser")
    settings = load_settings(
        {
            **orthanc_env,
            "PACS_DATABASE_URL": new_database(home / "pacs.sqlite3"),
            "PACS_PORTAL_PORT": str(find_free_port()),
        }
    )
    assert read_installed_version(settings.viewer_dir), "run scripts/install for the viewer"
    patient = {"PatientID": "PRIOR-0001", "PatientName": "Compare^Carla"}
    today = datetime.date.today()
    studies = {
        "current": clone_study("CT", StudyDate=today.strftime("%Y%m%d"), **patient),
        "prior": clone_study(
            "MR", StudyDate=(today - datetime.timedelta(days=30)).strftime("%Y%m%d"), **patient
        ),
    }
    app = create_app({"PACS_SETTINGS": settings})
    with ArchiveClient.from_settings(settings) as client, app.app_context():
        for datasets in studies.values():
            orthanc_ids = {client.upload_instance(part10_of(ds)).study_id for ds in datasets}
            save_assessment(
                db.session, assess_study(client.get_archived_study(orthanc_ids.pop())), NOW
            )
        for role in (Role.RADIOLOGIST, Role.REFERRER):
            name = REFERRER if role == Role.REFERRER else ""
            create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW, dicom_name=name)
        for datasets in studies.values():
            row = db.session.scalar(
                select(Study).where(Study.study_instance_uid == datasets[0].StudyInstanceUID)
            )
            row.status = StudyStatus.FINAL
            row.referring_physician = REFERRER
            db.session.add(
                Report(study=row, key=row.study_instance_uid[-32:], status="final",
                       sections={"impression": "Reported."}, created_at=NOW, updated_at=NOW)
            )  # fmt: skip
        db.session.commit()
    with serve_portal(app, settings.portal_port) as url:
        yield ComparePortal(
            url,
            settings,
            studies["current"][0].StudyInstanceUID,
            studies["prior"][0].StudyInstanceUID,
        )


def read_viewports(page) -> list[np.ndarray]:
    """The pixels of each visible viewport, cut from one screenshot of the page (the layout
    may change between two looks while the hanging protocol applies)."""
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('canvas.cornerstone-canvas'))
            .map(c => c.getBoundingClientRect())
            .filter(r => r.width > 50 && r.height > 50)
            .map(r => [r.left, r.top, r.right, r.bottom])"""
    )
    shot = Image.open(BytesIO(page.screenshot())).convert("L")
    return [np.asarray(shot.crop(tuple(map(int, box))), dtype=np.float32) for box in boxes]


def wait_for_two_images(page, seconds: float = 90) -> list[np.ndarray]:
    """Poll (bounded) until two viewports each show an image."""
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=seconds)
    while True:
        shown = [pixels for pixels in read_viewports(page) if pixels.var() > 100]
        if len(shown) >= 2:
            return shown
        assert datetime.datetime.now() < deadline, f"{len(shown)} viewports showed an image"
        page.wait_for_timeout(500)


@pytest.mark.slow
@pytest.mark.requires("chromium")
@pytest.mark.parametrize("role", ["radiologist", "referrer"])
def test_compare_opens_the_study_and_its_prior_side_by_side(
    compare_portal: ComparePortal, browser, role: str
) -> None:
    context = browser.new_context(
        base_url=compare_portal.url, viewport={"width": 1400, "height": 900}
    )
    context.set_default_timeout(VIEWER_TIMEOUT_MS)
    try:
        page = context.new_page()
        assert sign_in(page, f"{role}@example.org", PASSWORD) == 200
        start = "/studies/{}" if role == "radiologist" else "/studies/{}/report"
        page.goto(start.format(compare_portal.current))
        row = page.locator(f"tr[data-prior-uid='{compare_portal.prior}']")
        assert "relevant" not in (row.get_attribute("class") or "")  # MR beside a CT
        frames: set[str] = set()
        refused: list[str] = []

        def watch(response) -> None:
            if "/dicom-web/" in response.url:
                if 400 <= response.status < 500:  # the proxy's refusals (not a busy archive)
                    refused.append(f"{response.status} {response.url}")
                elif "/frames/" in response.url:
                    frames.add(response.url.split("/studies/")[1].split("/")[0])

        context.on("response", watch)
        with context.expect_page() as opened:
            row.get_by_role("link", name="Compare").click()
        viewer = opened.value
        viewer.wait_for_selector("canvas.cornerstone-canvas")
        first, second = wait_for_two_images(viewer)[:2]
        screenshot(viewer, f"priors-compare-{role}", full_page=False)
        assert viewer.locator("canvas.cornerstone-canvas").count() >= 2
        rows, columns = min(first.shape[0], second.shape[0]), min(first.shape[1], second.shape[1])
        difference = np.abs(first[:rows, :columns] - second[:rows, :columns]).mean()
        assert difference > 1, "both viewports show the same image"
        assert frames == {compare_portal.current, compare_portal.prior}, frames
        assert not refused, refused
    finally:
        context.close()


@pytest.mark.slow
@pytest.mark.requires("chromium")
def test_compare_in_the_editor_fills_the_comparison_line(
    compare_portal: ComparePortal, browser
) -> None:
    """A new study of the same patient (on the worklist, unread): Compare in its report
    editor opens the viewer and writes the prior into the comparison section, saved."""
    app = create_app({"PACS_SETTINGS": compare_portal.settings})
    with app.app_context():
        prior = db.session.scalar(
            select(Study).where(Study.study_instance_uid == compare_portal.prior)
        )
        new_uid = generate_uid()
        db.session.add(
            Study(study_instance_uid=new_uid, orthanc_id="editor-test", status="received",
                  patient_name=prior.patient_name, patient_id=prior.patient_id,
                  issuer_of_patient_id=prior.issuer_of_patient_id, modality="MR",
                  modalities="MR", body_part=prior.body_part, received_at=NOW,
                  ingested_at=NOW, study_date=datetime.date.today(), warnings=[])
        )  # fmt: skip
        db.session.commit()
        expected = (
            f"Comparison: MR {prior.body_part.lower() or prior.description} {prior.study_date}"
        )
    from playwright.sync_api import expect

    context = browser.new_context(base_url=compare_portal.url)
    try:
        page = context.new_page()
        sign_in(page, "radiologist@example.org", PASSWORD)
        page.goto(f"/studies/{new_uid}/report/edit")
        row = page.locator(f"tr[data-prior-uid='{compare_portal.prior}']")
        assert "relevant" in row.get_attribute("class")  # MR beside an MR
        with context.expect_page() as opened:
            row.get_by_role("link", name="Compare").click()
        opened.value.close()
        assert page.locator("#section-comparison").input_value() == expected
        expect(page.locator("#save-status")).to_contain_text("Saved at")
        page.locator("#section-comparison").fill(expected + " (edited)")  # it stays editable
        screenshot(page, "priors-editor-comparison")
        with app.app_context():
            saved = db.session.scalar(
                select(Report).join(Study).where(Study.study_instance_uid == new_uid)
            )
            assert saved.sections["comparison"] == expected
    finally:
        context.close()
