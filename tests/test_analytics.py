"""The analytics dashboards and API over the hand-computed fixture warehouse: roles, the
figures' numbers, CSV downloads, patient names for admins only, and no warehouse yet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from config.settings import Settings
from core.accounts import Role
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.models.accounts import AuditEvent
from tests.support.turnaround import NOW, build_operational_database, fixture_settings, refresh
from tests.support.users import PASSWORD, token_for

ROLES = ("manager", "admin", "radiologist", "researcher", "referrer")


def make_app(settings: Settings, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setattr("storage.accounts.hash_password", lambda password: password_hash)
    engine = build_operational_database(settings)
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    with app.app_context():
        for role in ROLES:
            create_user(db.session, f"{role}@example.org", PASSWORD, Role(role), NOW)
        db.session.commit()
    return app, engine


@pytest.fixture
def app(
    tmp_path: Path, password_hash: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    settings = fixture_settings(tmp_path, database_url)
    app, engine = make_app(settings, password_hash, monkeypatch)
    refresh(settings, engine, full=True)
    yield app


def test_only_managers_and_admins_reach_the_analytics(app: Flask) -> None:
    client = app.test_client()
    for role in ROLES:
        headers = token_for(client, role)
        allowed = role in ("manager", "admin")
        for url in (
            "/analytics",
            "/analytics/data.json",
            "/analytics/volume.csv",
            "/analytics/plotly.min.js",
            "/api/v1/analytics/turnaround",
        ):
            status = client.get(url, headers=headers).status_code
            assert status == (200 if allowed else 403), (role, url, status)


def test_api_turnaround_by_group_and_period(app: Flask) -> None:
    client = app.test_client()
    headers = token_for(client, "manager")
    response = client.get(
        "/api/v1/analytics/turnaround?group_by=modality&period=week", headers=headers
    )
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["timezone"], body["period"], body["group_by"]) == (
        "Europe/Paris",
        "week",
        "modality",
    )
    assert [
        (i["period"], i["group"], i["count"], i["p50_minutes"], i["p90_minutes"])
        for i in body["items"]
    ] == [
        ("2026-11-02", "CT", 3, 90.0, 666.0),
        ("2026-11-02", "MR", 2, 405.0, 657.0),
    ]
    by_day = client.get(
        "/api/v1/analytics/turnaround?period=day&from=2026-11-03&to=2026-11-03", headers=headers
    ).json["items"]
    assert [(i["count"], i["p50_minutes"], i["p90_minutes"]) for i in by_day] == [(3, 720.0, 792.0)]
    radiologist = client.get(
        "/api/v1/analytics/turnaround?group_by=radiologist&period=month&priority=STAT",
        headers=headers,
    ).json["items"]
    assert [(i["group"], i["count"]) for i in radiologist] == [
        ("one@example.org", 1),
        ("two@example.org", 1),
    ]
    exams = client.get(
        "/api/v1/analytics/turnaround?metric=exam_to_final&period=month", headers=headers
    ).json["items"]
    assert [(i["count"], i["p50_minutes"], i["p90_minutes"]) for i in exams] == [(4, 105.0, 544.0)]
    for bad in ("period=year", "group_by=patient", "from=2026-11-05&to=2026-11-01", "colour=red"):
        response = client.get(f"/api/v1/analytics/turnaround?{bad}", headers=headers)
        assert 400 <= response.status_code < 500 and "error" in response.json, bad


def test_dashboard_data_and_patient_names_for_admins_only(app: Flask) -> None:
    client = app.test_client()
    manager = client.get("/analytics/data.json", headers=token_for(client, "manager")).json
    assert set(manager["figures"]) == {
        "turnaround_modality",
        "turnaround_priority",
        "order_turnaround_modality",
        "order_turnaround_priority",
        "volume",
        "backlog",
        "productivity",
    }
    # No dates given: the 90 days up to the latest final report.
    assert (manager["from"], manager["to"]) == ("2026-08-06", "2026-11-03")
    lines = {
        trace["name"]: trace["y"] for trace in manager["figures"]["turnaround_modality"]["data"]
    }
    assert lines == {"CT p50": [1.5], "CT p90": [11.1], "MR p50": [6.75], "MR p90": [10.95]}
    orders = manager["figures"]["order_turnaround_priority"]
    assert orders["layout"]["yaxis"]["title"]["text"] == "hours"
    # Hours, one bar per priority, the studies measured in the hover text.
    assert {trace["name"]: (trace["x"], trace["y"]) for trace in orders["data"]} == {
        "order → exam p50": (["STAT", "URGENT"], [0.17, 2.79]),
        "order → exam p90": (["STAT", "URGENT"], [0.17, 3.83]),
        "exam → final p50": (["STAT", "URGENT"], [1.33, 6.92]),
        "exam → final p90": (["STAT", "URGENT"], [1.73, 11.12]),
        "order → final p50": (["STAT", "URGENT"], [1.25, 10.0]),
        "order → final p90": (["STAT", "URGENT"], [1.25, 13.2]),
    }
    assert orders["data"][2]["customdata"] == [2, 2]
    backlog = {trace["name"]: trace["y"] for trace in manager["figures"]["backlog"]["data"]}
    assert backlog == {"ROUTINE": [0, 1, 0, 0, 0, 0, 0], "STAT": [0, 0, 0, 0, 1, 0, 0]}
    [breach] = manager["breaches"]
    assert breach["accession_number"] == "TAT0002"
    assert "patient_name" not in breach and "url" not in breach
    admin_client = app.test_client()
    [admin_breach] = admin_client.get(
        "/analytics/data.json", headers=token_for(admin_client, "admin")
    ).json["breaches"]
    assert admin_breach["patient_name"] == "Tat, Patient2"
    assert admin_breach["url"] == "/studies/1.2.826.0.1.3680043.10.77.2"
    with app.app_context():
        assert db.session.query(AuditEvent).filter_by(action="view_breaches").count() == 1


def test_every_chart_downloads_as_csv(app: Flask) -> None:
    client = app.test_client()
    headers = token_for(client, "manager")
    for chart in (
        "turnaround_modality",
        "turnaround_priority",
        "order_turnaround_modality",
        "order_turnaround_priority",
        "volume",
        "backlog",
        "productivity",
        "breaches",
    ):
        response = client.get(f"/analytics/{chart}.csv?from=2026-11-01", headers=headers)
        assert response.status_code == 200 and response.mimetype == "text/csv", chart
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert rows, chart
    volume = client.get("/analytics/volume.csv?modality=CT&from=2026-11-01", headers=headers)
    rows = list(csv.DictReader(io.StringIO(volume.get_data(as_text=True))))
    assert rows == [
        {"day": "2026-11-02", "modality": "CT", "studies": "3"},
        {"day": "2026-11-06", "modality": "CT", "studies": "1"},
    ]
    orders = client.get("/analytics/order_turnaround_modality.csv", headers=headers)
    rows = list(csv.DictReader(io.StringIO(orders.get_data(as_text=True))))
    assert [
        (r["group_value"], r["exam_to_final_count"], r["exam_to_final_p50_minutes"]) for r in rows
    ] == [
        ("CT", "2", "80.0"),
        ("MR", "2", "415.0"),
    ]
    assert client.get("/analytics/nothing.csv", headers=headers).status_code == 404


def test_without_a_warehouse_the_pages_say_how_to_build_it(
    tmp_path: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = make_app(fixture_settings(tmp_path), password_hash, monkeypatch)
    client = app.test_client()
    headers = token_for(client, "manager")
    page = client.get("/analytics", headers=headers)
    assert page.status_code == 200
    assert "no data yet: run `pacs warehouse refresh`" in page.get_data(as_text=True)
    api = client.get("/api/v1/analytics/turnaround", headers=headers)
    assert api.status_code == 404
    assert "pacs warehouse refresh" in api.json["error"] + str(api.json["detail"])


def test_charts_without_data_say_so_in_words() -> None:
    from portal.analytics import charts

    for figure in (
        charts.turnaround_figure([]),
        charts.volume_figure([]),
        charts.backlog_figure([]),
        charts.productivity_figure([]),
    ):
        assert figure["data"] == []  # no axes from -1 to 6: the page shows the words instead
        assert figure["empty"].startswith("No ")


def test_a_single_period_is_labelled_as_its_date_with_units_and_a_legend() -> None:
    from portal.analytics import charts

    row = {"period": "2026-11-30", "group_value": "CT", "count": 3}
    figure = charts.turnaround_figure([{**row, "p50_minutes": 90.0, "p90_minutes": 150.0}])
    axis = figure["layout"]["xaxis"]
    assert axis["type"] == "date"
    assert axis["tickvals"] == ["2026-11-30"] and axis["ticktext"] == ["2026-11-30"]
    assert figure["layout"]["yaxis"]["title"]["text"] == "hours, received → final"
    assert figure["layout"]["showlegend"] is True
    assert [trace["name"] for trace in figure["data"]] == ["CT p50", "CT p90"]
    volume = charts.volume_figure([{"day": "2026-11-30", "modality": "CT", "studies": 4}])
    assert volume["layout"]["xaxis"]["tickvals"] == ["2026-11-30"]
    assert volume["layout"]["showlegend"] is True
