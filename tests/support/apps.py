"""Portal apps for the tests: the users of every role and the studies of the worklist tests."""

from __future__ import annotations

import datetime

from flask import Flask

from core.accounts import Role
from portal.extensions import db
from storage.accounts import create_user
from storage.models.studies import Study
from tests.support.users import NOW, PASSWORD


def add_users_and_studies(app: Flask) -> None:
    """`ROLE@example.org` for every role, `second@example.org` (radiologist), 30 studies."""
    with app.app_context():
        for role in Role:
            create_user(db.session, f"{role}@example.org", PASSWORD, role, NOW)
        create_user(db.session, "second@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
        for index in range(30):
            db.session.add(make_study(index))
        db.session.commit()


def make_study(index: int, **changes) -> Study:
    values = dict(
        study_instance_uid=f"1.2.826.0.1.3680043.10.{index + 1}",
        orthanc_id=f"{index:08x}-00000000-00000000-00000000-00000000",
        status="received",
        patient_name=f"Patient{index:02d}^Test",
        patient_id=f"PID{index:04d}",
        accession_number=f"ACC{index:05d}",
        study_date=datetime.date(2026, 11, 1) + datetime.timedelta(days=index % 20),
        study_datetime=datetime.datetime(2026, 11, 1, 9) + datetime.timedelta(days=index % 20),
        modality=["CT", "MR", "CR"][index % 3],
        modalities=["CT", "MR", "CR"][index % 3],
        description="Demo study",
        priority=["ROUTINE", "URGENT", "STAT"][index % 3] if index % 5 else "STAT",
        received_at=NOW - datetime.timedelta(hours=index),
        ingested_at=NOW,
        series_count=1,
        instance_count=index + 1,
        warnings=[],
    )
    values.update(changes)
    return Study(**values)
