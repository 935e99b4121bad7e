"""The turnaround dashboard in Chromium: a manager opens it from the top bar, the Plotly
charts draw under the portal's strict CSP, a filter change redraws them; a radiologist and
a researcher are turned away. Screenshots land in test-artifacts/browser/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from core.accounts import Role, hash_password
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from tests.support.browser import TIMEOUT_MS, screenshot, serve_portal, sign_in
from tests.support.turnaround import NOW, build_operational_database, fixture_settings, refresh
from tests.support.users import PASSWORD

pytestmark = pytest.mark.slow  # Chromium

CHARTS = (
    "turnaround_modality",
    "turnaround_priority",
    "order_turnaround_modality",
    "order_turnaround_priority",
    "volume",
    "backlog",
    "productivity",
)


@pytest.fixture(scope="module")
def portal_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = fixture_settings(tmp_path_factory.mktemp("analytics-browser"))
    engine = build_operational_database(settings)
    refresh(settings, engine, full=True)
    app = create_app({"PACS_SETTINGS": settings})
    password_hash = hash_password(PASSWORD)
    with pytest.MonkeyPatch.context() as patch, app.app_context():
        patch.setattr("storage.accounts.hash_password", lambda password: password_hash)
        for role in (Role.MANAGER, Role.RADIOLOGIST, Role.RESEARCHER):
            create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW)
        db.session.commit()
    with serve_portal(app, settings.portal_port) as url:
        yield url


@pytest.fixture
def page(browser: Browser, portal_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=portal_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def trace_names(page: Page, chart: str) -> list[str]:
    return page.evaluate(f"document.getElementById('chart-{chart}').data.map(t => t.name)")


def test_manager_sees_the_charts_and_a_filter_redraws_them(page: Page) -> None:
    # CSP violations. plotly.js is told not to inline its own styles (plotly-strict.css); its
    # bundle still tries, once as it loads, to add MapLibre's stylesheet (for map traces,
    # which the dashboards do not draw): the CSP refuses it, and nothing else may be refused.
    violations: list[tuple[str, str]] = []
    page.on(
        "console",
        lambda m: violations.append((m.text, m.location["url"])) if "violates" in m.text else None,
    )
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, "manager@example.org")
    page.wait_for_selector("body[data-analytics-loaded='1']")  # a manager lands on them
    violations.clear()  # counted for the one load below
    with page.expect_navigation():
        page.locator("header.topbar").get_by_role("link", name="Turnaround").click()
    page.wait_for_selector("body[data-analytics-loaded='1']")
    for chart in CHARTS:  # drawn by Plotly: an SVG with the figure's traces
        assert page.locator(f"#chart-{chart} svg.main-svg").count() > 0, chart
        assert page.get_attribute(f"#chart-{chart}", "data-draws") == "1"
    assert trace_names(page, "turnaround_modality") == ["CT p50", "CT p90", "MR p50", "MR p90"]
    assert trace_names(page, "order_turnaround_priority")[:2] == [
        "order → exam p50",
        "order → exam p90",
    ]
    assert page.locator("#breaches tbody tr").count() == 1
    assert page.locator("#breaches tbody td").first.inner_text() == "TAT0002"
    assert page.locator("#breaches thead th", has_text="Patient").count() == 0
    screenshot(page, "analytics-manager")

    page.select_option("select[name=modality]", "MR")
    page.wait_for_selector("body[data-analytics-loaded='2']")
    assert page.get_attribute("#chart-turnaround_modality", "data-draws") == "2"
    assert trace_names(page, "turnaround_modality") == ["MR p50", "MR p90"]
    assert trace_names(page, "volume") == ["MR"]
    assert page.locator("#breaches tbody td.empty").count() == 1
    assert "modality=MR" in page.url
    csv_link = page.locator("a.csv").first.get_attribute("href")
    assert csv_link.startswith("/analytics/turnaround_modality.csv?") and "modality=MR" in csv_link
    screenshot(page, "analytics-manager-mr")
    assert [url for _, url in violations if not url.endswith("/analytics/plotly.min.js")] == []
    assert len(violations) <= 1, violations
    assert errors == []


@pytest.mark.parametrize("role", ["radiologist", "researcher"])
def test_radiologists_and_researchers_are_denied(page: Page, role: str) -> None:
    sign_in(page, f"{role}@example.org")
    assert page.locator("header.topbar").get_by_role("link", name="Turnaround").count() == 0
    response = page.goto("/analytics")
    assert response.status == 403
    assert page.locator("h1").inner_text() == "Not allowed"
    assert page.locator(".chart").count() == 0
    screenshot(page, f"analytics-denied-{role}")
