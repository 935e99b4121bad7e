"""The portal's Scheduled tab, the study page's order, and the admins' unmatched lists."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from flask import Flask

from config.settings import load_settings
from core.accounts import Role
from core.records import Priority
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.models.orders import Order
from storage.models.studies import Study
from storage.orders import receive_message
from tests.support.orders import make_order, order_message
from tests.support.services import make_env

PASSWORD = "correct horse battery staple"
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    settings = load_settings(make_env(tmp_path))
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True, "WTF_CSRF_ENABLED": False})
    with app.app_context():
        for role in (Role.ADMIN, Role.RADIOLOGIST, Role.REFERRER):
            create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW)
        study = Study(
            study_instance_uid="1.2.826.0.1.3680043.10.77",
            orthanc_id="orthanc-77",
            status="received",
            patient_id="P100",
            patient_name="Dupont^Jérôme",
            accession_number="ACC1",
            received_at=NOW,
            ingested_at=NOW,
        )
        orphan = Study(
            study_instance_uid="1.2.826.0.1.3680043.10.78",
            orthanc_id="orthanc-78",
            status="received",
            accession_number="ORPHAN-1",
            received_at=NOW,
            ingested_at=NOW,
        )
        db.session.add_all([study, orphan])
        db.session.commit()
    url = settings.database_url
    for number, priority in ((1, Priority.STAT), (2, Priority.ROUTINE), (3, Priority.URGENT)):
        answer = receive_message(url, order_message(make_order(number, priority=priority)), "t")
        assert "MSA|AA" in answer
    with app.app_context():
        first = db.session.query(Order).filter_by(placer_order_number="PO1").one()
        first.study_id = db.session.query(Study).filter_by(orthanc_id="orthanc-77").one().id
        first.status = "completed"
        db.session.commit()
    return app


def sign_in(app: Flask, role: str):
    client = app.test_client()
    answer = client.post("/login", data={"email": f"{role}@example.org", "password": PASSWORD})
    assert answer.status_code == 302
    return client


def test_the_scheduled_tab_lists_open_orders_with_their_priority(app) -> None:
    page = sign_in(app, "radiologist").get("/orders").get_data(as_text=True)
    assert "ACC2" in page and "ACC3" in page
    assert "ACC1" not in page  # performed: on the worklist, not scheduled
    assert "URGENT" in page and "Dupont, Jérôme" in page
    assert "CT01" in page
    assert sign_in(app, "radiologist").get("/orders?day=2026-13-01").status_code == 400


def test_the_study_page_shows_its_order(app) -> None:
    page = sign_in(app, "radiologist").get("/studies/1.2.826.0.1.3680043.10.77")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "PO1" in text and "cough for three weeks" in text


def test_admins_see_orders_without_studies_and_studies_without_orders(app) -> None:
    page = sign_in(app, "admin").get("/admin/orders").get_data(as_text=True)
    orders_part, studies_part = page.split("Studies without orders")
    assert "PO2" in orders_part and "PO3" in orders_part and "PO1" not in orders_part
    assert "ORPHAN-1" in studies_part and "ACC1" not in studies_part
    assert sign_in(app, "radiologist").get("/admin/orders").status_code == 403
    assert sign_in(app, "referrer").get("/orders").status_code == 403
