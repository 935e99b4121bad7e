"""Every page of the portal, for the roles that see it, through axe-core (the WCAG 2.1 A and
AA rules, named in RULES) in Chromium, at desktop (1280 px) and tablet (768 px) widths; at
both, no page is wider than the window (wide tables scroll inside their own box).

Not checked: the OHIF viewer under /viewer/ (a third-party bundle, served as published).
The rules' results per page land in test-artifacts/browser/accessibility.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page

from core.accounts import Role, hash_password
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from tests.support.apps import make_study
from tests.support.browser import ARTIFACTS, TIMEOUT_MS, screenshot, serve_portal, sign_in
from tests.support.tools import AXE_CORE
from tests.support.turnaround import NOW, build_operational_database, fixture_settings, refresh
from tests.support.users import PASSWORD, token_for

pytestmark = [pytest.mark.slow, pytest.mark.requires("axe-core")]

TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]  # WCAG 2.0 and 2.1, levels A and AA
# What axe-core 4.14.1 runs for TAGS (checked against the engine below, so that an upgrade
# that adds or drops a rule shows here).
RULES = frozenset(
    (
        "area-alt",
        "aria-allowed-attr",
        "aria-braille-equivalent",
        "aria-command-name",
        "aria-conditional-attr",
        "aria-deprecated-role",
        "aria-hidden-body",
        "aria-hidden-focus",
        "aria-input-field-name",
        "aria-meter-name",
        "aria-progressbar-name",
        "aria-prohibited-attr",
        "aria-required-attr",
        "aria-required-children",
        "aria-required-parent",
        "aria-roles",
        "aria-tab-name",
        "aria-toggle-field-name",
        "aria-tooltip-name",
        "aria-valid-attr",
        "aria-valid-attr-value",
        "autocomplete-valid",
        "avoid-inline-spacing",
        "blink",
        "button-name",
        "bypass",
        "color-contrast",
        "definition-list",
        "dlitem",
        "document-title",
        "duplicate-id-aria",
        "form-field-multiple-labels",
        "frame-focusable-content",
        "frame-title",
        "frame-title-unique",
        "html-has-lang",
        "html-lang-valid",
        "html-xml-lang-mismatch",
        "image-alt",
        "input-button-name",
        "input-image-alt",
        "label",
        "label-content-name-mismatch",
        "link-in-text-block",
        "link-name",
        "list",
        "listitem",
        "marquee",
        "meta-refresh",
        "meta-viewport",
        "nested-interactive",
        "no-autoplay-audio",
        "object-alt",
        "role-img-alt",
        "scrollable-region-focusable",
        "select-name",
        "server-side-image-map",
        "summary-name",
        "svg-img-alt",
        "td-headers-attr",
        "th-has-data-cells",
        "valid-lang",
        "video-caption",
    )
)
WIDTHS = (1280, 768)  # desktop, tablet (portrait)
REPORTED = "1.2.826.0.1.3680043.10.501"  # a CR study with a final report, for the referrer
DRAFTED = "1.2.826.0.1.3680043.10.502"  # a CT study with a draft


@dataclass
class Portal:
    app: Flask
    url: str


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The analytics fixture's database and warehouse, a user per role, a referred study
    with a final report and one with a draft."""
    settings = fixture_settings(tmp_path_factory.mktemp("accessibility"))
    engine = build_operational_database(settings)
    refresh(settings, engine, full=True)
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    password_hash = hash_password(PASSWORD)
    with app.app_context():
        for role in Role:
            user = create_user(
                db.session,
                f"{role}@example.org",
                PASSWORD,
                role,
                NOW,
                display_name=f"{role.capitalize()}^Demo",
                dicom_name="Referrer^Demo" if role == Role.REFERRER else "",
            )
            user.password_hash = password_hash
        reported = make_study(500, study_instance_uid=REPORTED, orthanc_id="a11y-1")
        reported.referring_physician = "Referrer^Demo"
        db.session.add(reported)
        db.session.add(make_study(501, study_instance_uid=DRAFTED, orthanc_id="a11y-2"))
        db.session.commit()
    client = app.test_client()
    headers = token_for(client, "radiologist")
    etags = {}
    for uid in (DRAFTED, REPORTED):
        draft = {"findings": "Clear lungs.", "impression": "Normal."}
        saved = client.put(f"/api/v1/studies/{uid}/report", headers=headers, json=draft)
        assert saved.status_code in (200, 201), saved.json
        etags[uid] = saved.headers["ETag"]
    signed = client.post(
        f"/api/v1/studies/{REPORTED}/report/finalize",
        headers={**headers, "If-Match": etags[REPORTED]},
    )
    assert signed.status_code == 201, signed.json
    with serve_portal(app, settings.portal_port) as url:
        yield Portal(app, url)


# Each role's pages (path, what the page is).
PAGES = {
    None: ["/login"],
    "admin": [
        "/worklist",
        f"/studies/{DRAFTED}",
        f"/studies/{REPORTED}/report",
        "/orders",
        "/imports",
        "/analytics",
        "/research",
        "/admin/quarantine",
        "/admin/orders",
        "/admin/audit",
        "/admin/users",
        "/admin/modalities",
        "/admin/report-templates",
        "/account/password",
        "/peer-review",
        "/peer-review/discussions",
    ],
    "radiologist": [
        "/worklist",
        f"/studies/{REPORTED}",
        f"/studies/{DRAFTED}/report/edit",
        f"/studies/{REPORTED}/report/edit",
        "/orders",
        "/peer-review",
        f"/studies/{DRAFTED}/teaching",
    ],
    "referrer": ["/referrals", f"/studies/{REPORTED}/report"],
    "manager": ["/", "/analytics", "/analytics/peer-review", "/worklist"],  # last: refusal
    "researcher": ["/", "/research", "/teaching"],
}
CASES = [(role, path) for role, paths in PAGES.items() for path in paths]


# The innermost elements that reach past the window's right edge (none: the page fits).
WIDER_THAN_WINDOW = """() => {
    const past = e => e.getBoundingClientRect().right > window.innerWidth + 1;
    const page = document.documentElement.scrollWidth > window.innerWidth
        ? ['the document: ' + document.documentElement.scrollWidth] : [];
    return page.concat([...document.body.querySelectorAll('*')]
        .filter(e => past(e) && ![...e.children].some(past)
                     && !e.closest('.table-scroll, dialog:not([open])'))
        .slice(0, 5)
        .map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    return AXE_CORE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def results() -> Iterator[dict]:
    collected: dict = {}
    yield collected
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "accessibility.json").write_text(json.dumps(collected, indent=1, sort_keys=True))


def run_axe(page: Page, source: str) -> dict:
    # Evaluated by the driver, not added as a <script>: the portal's CSP refuses inline scripts.
    page.evaluate(source)
    return page.evaluate(
        """async tags => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                    resultTypes: ['violations']});
            const ran = [...result.passes, ...result.violations, ...result.incomplete,
                         ...result.inapplicable].map(rule => rule.id);
            return {ran: ran, violations: result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))};
        }""",
        TAGS,
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("role", "path"), CASES)
def test_page_passes_axe_and_fits_the_width(
    browser: Browser,
    portal: Portal,
    axe_source: str,
    results: dict,
    role: str | None,
    path: str,
    width: int,
) -> None:
    context = browser.new_context(base_url=portal.url, viewport={"width": width, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        if role:
            sign_in(page, f"{role}@example.org")
        page.goto(path)
        page.wait_for_load_state("networkidle")
        report = run_axe(page, axe_source)
        overflow = page.evaluate(WIDER_THAN_WINDOW)
        if path == "/admin/audit":  # the audit trail wraps its cells: no scrolling either
            overflow += page.evaluate(
                "[...document.querySelectorAll('.table-scroll')]"
                ".filter(box => box.scrollWidth > box.clientWidth).map(box => box.ariaLabel)"
            )
        name = (
            f"a11y-{role or 'anonymous'}-{path.strip('/').replace('/', '-')[:40] or 'home'}-{width}"
        )
        screenshot(page, name)
    finally:
        context.close()
    results[f"{role} {path} {width}"] = report
    assert report["violations"] == [], json.dumps(report["violations"], indent=1)
    assert set(report["ran"]) == RULES, "axe ran other rules than those named in RULES"
    assert not overflow, f"wider than a {width} px window: {overflow}"
