"""The portal in a real browser: sign-in for every role, the worklist's filters, sorting,
taking and releasing studies, and patient names that carry markup.

Runs Debian's Chromium (`scripts/install --test` installs it) through Playwright; the
portal is served by a real HTTP server on a free loopback port. Screenshots of every test
land in test-artifacts/browser/.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from config.settings import load_settings
from core.accounts import Role, hash_password
from core.records import format_person_name
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.models.accounts import AuditEvent, User
from storage.models.studies import Study
from tests.support.browser import TIMEOUT_MS, screenshot, serve_portal, sign_in
from tests.support.services import make_env
from tests.support.users import PASSWORD

pytestmark = pytest.mark.slow  # Chromium

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)

# "-" (index 7) is the patient whose name carries a <script> tag.
SURNAME_LIST = """Abara Bergstrom Castillo Dubois Eriksen Fujita Gallagher - Haddad Ivanova Jansen
    Kowalski Lindqvist Moreau Nakamura Okafor Petrov Quinn Rossi Schneider Tanaka Ulrich Varga
    Wojcik Xu Yilmaz Zhang Almeida Brennan Chen Dimitrov Esposito Fischer Gomez Horvath Ibrahim
    Jovanovic Kim Larsen Mendes"""
SURNAMES = [None if name == "-" else name for name in SURNAME_LIST.split()]
GIVEN_NAMES = ["Ada", "Bruno", "Chinedu", "Dana", "Emil", "Farah", "Greta", "Hugo", "Ines"]
SCRIPT_NAME = "<script>alert('xss')</script>^Mallory"
MODALITIES = ["CT", "MR", "CR", "US", "DX"]
PRIORITY_RANK = {"STAT": 2, "URGENT": 1, "ROUTINE": 0}  # urgency: descending = STAT first
MINE = (3, 11)  # assigned to radiologist@example.org
THEIRS = (5, 13, 21)  # assigned to second@example.org
TAKE = 2  # the study the radiologist takes and releases
SCRIPT_INDEX = SURNAMES.index(None)


def patient_name(index: int) -> str:
    surname = SURNAMES[index]
    return SCRIPT_NAME if surname is None else f"{surname}^{GIVEN_NAMES[index % 9]}"


def study_values(index: int, name: str = "") -> dict:
    name = name or patient_name(index)
    day = datetime.date(2026, 10, 1) + datetime.timedelta(days=index % 25)
    return dict(
        study_instance_uid=f"1.2.826.0.1.3680043.10.900.{index + 1}",
        orthanc_id=f"{index:08x}-00000000-00000000-00000000-00000000",
        status=["received", "received", "in_progress", "received", "final"][index % 5],
        patient_name=name,
        patient_id=f"PID{index:04d}",
        accession_number=f"ACC{index:05d}",
        study_date=day,
        study_datetime=datetime.datetime.combine(day, datetime.time(8 + index % 9, 15)),
        modality=MODALITIES[index % 5],
        modalities=MODALITIES[index % 5],
        description=f"{MODALITIES[index % 5]} examination",
        priority="STAT" if index % 6 == 0 else "URGENT" if index % 4 == 1 else "ROUTINE",
        received_at=NOW - datetime.timedelta(hours=index, minutes=index),
        ingested_at=NOW,
        series_count=1,
        instance_count=10 + index,
        warnings=[],
    )


STUDIES = [study_values(index) for index in range(len(SURNAMES))]
# Never on the worklist: they must not show up anywhere.
HIDDEN = [
    {**study_values(40, "Hidden^Quarantined"), "status": "quarantined"},
    {**study_values(41, "Hidden^Removed"), "status": "removed"},
]


def uid(index: int) -> str:
    return STUDIES[index]["study_instance_uid"]


@dataclass
class Portal:
    app: Flask
    url: str


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The portal with users for every role and ~40 studies, served on a loopback port."""
    settings = load_settings(make_env(tmp_path_factory.mktemp("browser-home")))
    app = create_app({"PACS_SETTINGS": settings})
    password_hash = hash_password(PASSWORD)  # one real bcrypt hash instead of seven
    with pytest.MonkeyPatch.context() as patch, app.app_context():
        patch.setattr("storage.accounts.hash_password", lambda password: password_hash)
        users = {
            role: create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW)
            for role in Role
        }
        second = create_user(db.session, "second@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
        db.session.flush()
        for index, values in enumerate(STUDIES):
            study = Study(**values)
            if index in MINE:
                study.assignee_id = users[Role.RADIOLOGIST].id
            elif index in THEIRS:
                study.assignee_id = second.id
            db.session.add(study)
        db.session.add_all(Study(**values) for values in HIDDEN)
        db.session.commit()
    with serve_portal(app, settings.portal_port) as url:
        yield Portal(app, url)


@pytest.fixture
def page(browser: Browser, portal: Portal, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies); any JavaScript dialog fails the test."""
    context = browser.new_context(base_url=portal.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    context.close()
    assert not dialogs, f"a JavaScript dialog fired: {dialogs}"


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def rows(page: Page) -> list[list[str]]:
    """The visible worklist rows as cell texts (the study UID first)."""
    return page.eval_on_selector_all(
        "table.worklist tbody tr[data-study-uid]",
        "rows => rows.map(r => [r.dataset.studyUid, ...[...r.cells].map(c => c.innerText.trim())])",
    )


def total_of(page: Page) -> int:
    """The count the page states above the table ("40 studies")."""
    text = page.locator("p.total").inner_text().strip()
    match = re.fullmatch(r"(\d+) stud(?:y|ies)", text)
    assert match, f"unexpected total text {text!r}"
    return int(match.group(1))


def apply_filters(page: Page, *, q: str = "", modality: str = "", assignee: str = "") -> None:
    page.fill("input[name=q]", q)
    page.select_option("select[name=modality]", modality)
    page.select_option("select[name=assignee]", assignee)
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()


def click_sort(page: Page, label: str) -> None:
    with page.expect_navigation():
        page.locator("table.worklist thead a", has_text=label).first.click()


# Columns of rows(): uid, priority, patient, patient ID, accession, modality, description,
# study date, received, images, status, assigned.
UID, PRIORITY, PATIENT, MODALITY, ASSIGNED = 0, 1, 2, 5, 11


# Where each role lands after signing in, and the heading it sees there.
LANDING = {
    "radiologist": ("/worklist", "Worklist"),
    "admin": ("/worklist", "Worklist"),
    "referrer": ("/referrals", "My patients"),
    "manager": ("/analytics", "Turnaround analytics"),
    "researcher": ("/research", "Research exports"),
}


@pytest.mark.parametrize("role", [str(role) for role in Role])
def test_every_role_signs_in_through_the_form(page: Page, role: str) -> None:
    assert sign_in(page, f"{role}@example.org") == 200
    top_bar = page.locator("header.topbar")
    assert f"{role}@example.org" in top_bar.inner_text()
    path, heading = LANDING[role]
    assert path_of(page) == path
    assert page.locator("h1").inner_text().startswith(heading)
    screenshot(page, f"signed-in-{role}")
    if role in ("radiologist", "admin"):
        assert len(rows(page)) == len(STUDIES)
    else:
        assert top_bar.get_by_role("link", name="Worklist").count() == 0
        response = page.goto("/worklist")
        assert response.status == 403
        assert page.locator("h1").inner_text() == "Not allowed"
        assert page.locator("table.worklist").count() == 0
        screenshot(page, f"not-allowed-{role}")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert path_of(page) == "/login"
    page.goto("/")
    assert path_of(page) == "/login", "signed out, yet the home page opened"


def test_a_wrong_password_shows_the_error_and_opens_no_session(page: Page, portal: Portal) -> None:
    assert sign_in(page, "second@example.org", "not-the-password") == 401
    assert path_of(page) == "/login"
    error = page.locator(".flash.error")
    assert error.inner_text().strip() == "Unknown e-mail or wrong password."
    assert page.get_by_role("button", name="Sign out").count() == 0
    screenshot(page, "wrong-password")
    # The session cookie (it holds the CSRF token) names no user.
    serializer = portal.app.session_interface.get_signing_serializer(portal.app)
    for cookie in page.context.cookies():
        assert cookie["name"] != "remember_token"
        if cookie["name"] == portal.app.config["SESSION_COOKIE_NAME"]:
            assert "_user_id" not in serializer.loads(cookie["value"])
    page.goto("/worklist")
    assert path_of(page) == "/login"
    with portal.app.app_context():
        failures = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "login",
                AuditEvent.outcome == "denied",
                AuditEvent.user_email == "second@example.org",
            )
        ).all()
    assert len(failures) == 1


def test_radiologist_filters_and_sorts_the_worklist(page: Page) -> None:
    sign_in(page, "radiologist@example.org")
    assert total_of(page) == len(STUDIES)
    default_order = [row[UID] for row in rows(page)]
    by_received = sorted(STUDIES, key=lambda s: s["received_at"], reverse=True)
    assert default_order == [s["study_instance_uid"] for s in by_received]

    apply_filters(page, modality="CT")
    assert query_of(page)["modality"] == ["CT"]
    ct = [s["study_instance_uid"] for s in STUDIES if s["modality"] == "CT"]
    assert sorted(row[UID] for row in rows(page)) == sorted(ct)
    assert {row[MODALITY] for row in rows(page)} == {"CT"}
    assert total_of(page) == len(ct)
    screenshot(page, "filter-modality-ct")

    okafor = format_person_name(patient_name(SURNAMES.index("Okafor")))
    apply_filters(page, q=okafor)  # typed as displayed: "Family, Given"
    assert [row[PATIENT] for row in rows(page)] == [okafor]
    assert total_of(page) == 1
    apply_filters(page, q="acc0001")  # accession numbers, case-insensitively
    assert sorted(row[UID] for row in rows(page)) == sorted(
        s["study_instance_uid"] for s in STUDIES if "acc0001" in s["accession_number"].lower()
    )
    apply_filters(page, q="Hidden")
    assert rows(page) == []
    assert total_of(page) == 0
    assert "No studies match these filters." in page.locator("table.worklist").inner_text()

    apply_filters(page, assignee="me")
    mine = rows(page)
    assert sorted(row[UID] for row in mine) == sorted(uid(index) for index in MINE)
    assert all("radiologist@example.org" in row[ASSIGNED] for row in mine)
    assert all("Release" in row[ASSIGNED] for row in mine)
    assert total_of(page) == len(MINE)
    screenshot(page, "filter-mine")

    apply_filters(page, assignee="unassigned")
    unassigned = rows(page)
    assert len(unassigned) == len(STUDIES) - len(MINE) - len(THEIRS)
    assert not any("@" in row[ASSIGNED] for row in unassigned)
    assert all("Take" in row[ASSIGNED] for row in unassigned)
    assert total_of(page) == len(unassigned)

    apply_filters(page, modality="MR", assignee="unassigned")
    expected = [
        s["study_instance_uid"]
        for index, s in enumerate(STUDIES)
        if s["modality"] == "MR" and index not in MINE + THEIRS
    ]
    assert sorted(row[UID] for row in rows(page)) == sorted(expected)
    assert total_of(page) == len(expected)

    # Sorting keeps the filters; without them, every study is sorted.
    apply_filters(page)
    by_name = [
        format_person_name(s["patient_name"])
        for s in sorted(STUDIES, key=lambda s: s["patient_name"])
    ]
    for _ in range(2):  # one click, then the other direction
        click_sort(page, "Patient")
        assert query_of(page)["sort"] == ["patient_name"]
        descending = query_of(page)["order"] == ["desc"]
        names = [row[PATIENT] for row in rows(page)]
        assert names == (by_name[::-1] if descending else by_name)
        header = page.locator("table.worklist thead a.sorted").inner_text()
        assert header == ("Patient ▼" if descending else "Patient ▲")
        assert total_of(page) == len(STUDIES)
    assert names != [format_person_name(s["patient_name"]) for s in by_received]
    screenshot(page, "sorted-by-patient")

    apply_filters(page, modality="CR")
    for _ in range(2):
        click_sort(page, "Priority")
        assert query_of(page)["modality"] == ["CR"]
        descending = query_of(page)["order"] == ["desc"]
        ranks = [PRIORITY_RANK[row[PRIORITY]] for row in rows(page)]
        assert ranks == sorted(ranks, reverse=descending)
        assert len(set(ranks)) > 1, "the CR studies should mix priorities"
    screenshot(page, "sorted-by-priority")


def test_radiologist_takes_and_releases_a_study(page: Page, portal: Portal) -> None:
    sign_in(page, "radiologist@example.org")
    row = page.locator(f'tr[data-study-uid="{uid(TAKE)}"]')
    assert row.get_by_role("button", name="Take").count() == 1
    assert "@" not in row.locator("td").nth(ASSIGNED - 1).inner_text()
    # Someone else's study: neither Take nor Release.
    theirs = page.locator(f'tr[data-study-uid="{uid(THEIRS[0])}"]')
    assert "second@example.org" in theirs.inner_text()
    assert theirs.get_by_role("button").count() == 0

    with page.expect_navigation():
        row.get_by_role("button", name="Take").click()
    assert path_of(page) == "/worklist"
    assert "radiologist@example.org" in row.locator("td").nth(ASSIGNED - 1).inner_text()
    assert row.get_by_role("button", name="Release").count() == 1
    assert row.get_by_role("button", name="Take").count() == 0
    assert assignee_of(portal, uid(TAKE)) == "radiologist@example.org"
    apply_filters(page, assignee="me")
    assert sorted(r[UID] for r in rows(page)) == sorted([uid(TAKE), *map(uid, MINE)])
    screenshot(page, "taken")

    with page.expect_navigation():
        row.get_by_role("button", name="Release").click()
    assert query_of(page)["assignee"] == ["me"]  # back where the radiologist was
    assert row.count() == 0
    assert assignee_of(portal, uid(TAKE)) is None
    apply_filters(page)
    assert row.get_by_role("button", name="Take").count() == 1
    assert "@" not in row.locator("td").nth(ASSIGNED - 1).inner_text()
    screenshot(page, "released")


def assignee_of(portal: Portal, study_uid: str) -> str | None:
    with portal.app.app_context():
        return db.session.scalar(
            select(User.email)
            .join(Study, Study.assignee_id == User.id)
            .where(Study.study_instance_uid == study_uid)
        )


def test_a_patient_name_with_markup_shows_as_text(page: Page) -> None:
    sign_in(page, "radiologist@example.org")
    row = page.locator(f'tr[data-study-uid="{uid(SCRIPT_INDEX)}"]')
    assert row.locator("td").nth(1).inner_text().strip() == format_person_name(SCRIPT_NAME)
    assert page.locator("main script").count() == 0
    apply_filters(page, q="<script>")
    assert [r[UID] for r in rows(page)] == [uid(SCRIPT_INDEX)]
    assert page.locator("input[name=q]").input_value() == "<script>"
    assert page.locator("main script").count() == 0
    screenshot(page, "markup-in-patient-name")


def test_radiologist_opens_a_study_page_from_the_worklist(page: Page) -> None:
    sign_in(page, "radiologist@example.org")
    row = page.locator(f'tr[data-study-uid="{uid(TAKE)}"]')
    with page.expect_navigation():
        row.get_by_role("link").first.click()
    assert path_of(page) == f"/studies/{uid(TAKE)}"
    text = page.locator("main").inner_text()
    assert "TIMELINE" in text.upper() and "SERIES" in text.upper() and uid(TAKE) in text
    screenshot(page, "study-page")
