"""A small operational database whose turnaround figures were computed by hand.

Department time zone Europe/Paris (UTC+1 in November); targets STAT 60 min, URGENT 720 min,
ROUTINE 5760 min; the warehouse is built "now" = 2026-11-06 12:00 UTC. Received -> final,
in minutes, of the studies with a final report:

    CT-1 STAT     45  (final 2026-11-02 09:45 local, radiologist one)
    CT-2 STAT     90  (final 2026-11-02 11:30 local, radiologist two; breaches 60)
    CT-3 ROUTINE 810  (final 2026-11-02 23:30 UTC = 2026-11-03 00:30 local, one; an addendum)
    MR-4 URGENT   90  (final signed 10:00 +09:00 = 01:00 UTC, two)
    MR-5 URGENT  720  (exactly its target: no breach; re-opened and signed again later)

so p50 = 90 and p90 = 720 + 0.6 * 90 = 774 (linear interpolation); by local day
2026-11-02 [45, 90] p50 67.5 p90 85.5, 2026-11-03 [90, 720, 810] p50 720 p90 792;
CT [45, 90, 810] p50 90 p90 666, MR [90, 720] p50 405 p90 657; radiologist one 3 reports
(median 720), two 2 reports (median 90). Backlog: CR-7 STAT 1500 min old ("1-4 d",
overdue), CT-6 ROUTINE 180 min ("1-4 h"). Left out: a removed study, a quarantined one.

Orders and exams (local times are Paris, UTC+1), in minutes:

    CT-1 order 08:30, MPPS 08:40-08:55: ordered -> exam 10, exam -> final 50, ordered -> final 75
    CT-2 no order; Study Time 09:10, images 09:20-09:40: exam from 08:10 UTC, exam -> final 110
    MR-4 order 20:00 (no MPPS), images 00:05-00:20 the next day: 245, 100, 360
    MR-5 order 07:00 (the images say 06:00: the order wins), MPPS started 08:30 and never
         ended, last image 08:50: 90, 730, 840

so ordered -> exam [10, 90, 245] p50 90 p90 214, exam -> final [50, 100, 110, 730] p50 105
p90 544, ordered -> final [75, 360, 840] p50 360 p90 744; by modality (= by priority: CT is
STAT, MR URGENT) CT 10 / [50, 110] p50 80 p90 104 / 75, MR [90, 245] p50 167.5 p90 229.5 /
[100, 730] p50 415 p90 667 / [360, 840] p50 600 p90 792. An order without its study and one
of the removed study change nothing.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from config.settings import Settings, load_settings
from storage.database import create_database_engine
from storage.models.accounts import User
from storage.models.orders import Order
from storage.models.studies import Study, StudyEvent
from storage.schema import upgrade_database
from tests.support.services import make_env
from warehouse.build import BuildSummary, build_warehouse, read_marks
from warehouse.extract import extract_changes

UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 6, 12, 0, tzinfo=UTC)
ONE, TWO = "one@example.org", "two@example.org"
TOKYO = datetime.timezone(datetime.timedelta(hours=9))


def at(day: int, hour: int, minute: int = 0, tz: datetime.tzinfo = UTC) -> datetime.datetime:
    return datetime.datetime(2026, 11, day, hour, minute, tzinfo=tz)


def fixture_env(home: Path, **overrides: str) -> dict[str, str]:
    return make_env(
        home,
        PACS_TIMEZONE="Europe/Paris",
        PACS_TAT_TARGET_STAT="60",
        PACS_TAT_TARGET_URGENT="720",
        PACS_TAT_TARGET_ROUTINE="5760",
        **overrides,
    )


def fixture_settings(home: Path, database_url: str | None = None) -> Settings:
    """The fixture's settings; its database is `database_url`, or a SQLite file in `home`."""
    overrides = {"PACS_DATABASE_URL": database_url} if database_url else {}
    return load_settings(fixture_env(home, **overrides))


def make_study(number: int, modality: str, priority: str, received: datetime.datetime, **more):
    values = dict(
        study_instance_uid=f"1.2.826.0.1.3680043.10.77.{number}",
        orthanc_id=f"{number:08x}-77777777-00000000-00000000-00000000",
        status="final",
        patient_name=f"Tat^Patient{number}",
        patient_id=f"TAT{number}",
        accession_number=f"TAT{number:04d}",
        modality=modality,
        modalities=modality,
        priority=priority,
        institution="General Hospital" if number % 2 else "North Clinic",
        body_part="CHEST",
        received_at=received,
        ingested_at=received,
        warnings=[],
    )
    values.update(more)
    return Study(**values)


def local(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    """A Paris wall-clock time, as HL7 and DICOM give it (naive)."""
    return datetime.datetime(2026, 11, day, hour, minute)


def make_order(number: int, study: Study | None, ordered: datetime.datetime, **more) -> Order:
    values = dict(
        placer_order_number=f"PO-TAT{number}",
        accession_number=f"TAT{number:04d}",
        patient_id=f"TAT{number}",
        modality=study.modality if study else "CT",
        priority=study.priority if study else "ROUTINE",
        status="completed",
        ordered_at=ordered,
        status_changed_at=NOW,
        created_at=NOW,
        updated_at=NOW,
        study=study,
    )
    values.update(more)
    return Order(**values)


def events(*steps: tuple[str, datetime.datetime, str]) -> list[StudyEvent]:
    return [StudyEvent(kind=kind, at=when, user_email=user) for kind, when, user in steps]


def build_operational_database(settings: Settings) -> Engine:
    """The operational database above, in `settings`' database."""
    engine = create_database_engine(settings.database_url)
    upgrade_database(engine)
    with Session(engine) as session, session.begin():
        for email, name in ((ONE, "Radiologist One"), (TWO, "Radiologist Two")):
            session.add(
                User(
                    email=email,
                    display_name=name,
                    role="radiologist",
                    password_hash="-",
                    created_at=NOW,
                )
            )
        ct1 = make_study(
            1, "CT", "STAT", at(2, 8), ordered_at=datetime.datetime(2026, 11, 2, 8, 30)
        )
        ct1.events = events(
            ("received", at(2, 8), ""),
            ("assigned", at(2, 8, 5), ONE),
            ("opened", at(2, 8, 10), ONE),
            ("report_started", at(2, 8, 12), ONE),
            ("preliminary", at(2, 8, 20), ONE),
            ("final", at(2, 8, 45), ONE),
        )
        ct2 = make_study(
            2,
            "CT",
            "STAT",
            at(2, 9),
            study_datetime=local(2, 9, 10),
            first_instance_at=local(2, 9, 20),
            last_instance_at=local(2, 9, 40),
        )
        ct2.events = events(("report_started", at(2, 9, 30), TWO), ("final", at(2, 10, 30), TWO))
        ct3 = make_study(3, "CT", "ROUTINE", at(2, 10), status="amended")
        ct3.events = events(
            ("opened", at(2, 11), ONE),
            ("final", at(2, 23, 30), ONE),
            ("addendum", at(3, 9), ONE),
            ("addendum", at(4, 9), TWO),
        )
        mr4 = make_study(
            4,
            "MR",
            "URGENT",
            at(2, 23, 30),
            first_instance_at=local(3, 0, 5),
            last_instance_at=local(3, 0, 20),
        )
        mr4.events = events(("opened", at(3, 0), TWO), ("final", at(3, 10, tz=TOKYO), TWO))
        mr5 = make_study(
            5,
            "MR",
            "URGENT",
            at(3, 8),
            ordered_at=local(3, 6),
            first_instance_at=local(3, 8, 35),
            last_instance_at=local(3, 8, 50),
        )
        mr5.events = events(
            ("report_started", at(3, 8, 30), ONE),
            ("preliminary", at(3, 9), ONE),
            ("final", at(3, 20), ONE),
            ("report_started", at(4, 8), TWO),  # re-opened after final
            ("preliminary", at(4, 9), TWO),
            ("final", at(4, 10), TWO),
        )
        ct6 = make_study(6, "CT", "ROUTINE", at(6, 9), status="in_progress")
        ct6.events = events(("opened", at(6, 9, 30), ONE))
        cr7 = make_study(7, "CR", "STAT", at(5, 11), status="received")
        removed = make_study(8, "CT", "STAT", at(2, 8), status="removed", removed_at=at(4, 8))
        removed.events = events(("final", at(2, 9), ONE))
        quarantined = make_study(9, "MR", "STAT", at(2, 8), status="quarantined")
        session.add_all([ct1, ct2, ct3, mr4, mr5, ct6, cr7, removed, quarantined])
        session.add_all(
            [
                make_order(
                    1,
                    ct1,
                    local(2, 8, 30),
                    mpps_uid="1.2.826.0.1.3680043.10.77.901",
                    exam_started_at=local(2, 8, 40),
                    exam_ended_at=local(2, 8, 55),
                ),
                # Linked without an MPPS: matching set its exam start from the study's time.
                make_order(4, mr4, local(2, 20), exam_started_at=local(2, 23)),
                make_order(
                    5,
                    mr5,
                    local(3, 7),
                    status="in_progress",
                    mpps_uid="1.2.826.0.1.3680043.10.77.905",
                    exam_started_at=local(3, 8, 30),
                ),
                make_order(8, removed, local(1, 8)),
                make_order(20, None, local(2, 7), status="scheduled"),
            ]
        )
    return engine


def refresh(settings: Settings, engine: Engine, *, full: bool = False, now=NOW) -> BuildSummary:
    """What the refresh flow does, without Prefect: incremental once a warehouse exists."""
    marks = None if full else read_marks(settings.warehouse_path)
    return build_warehouse(
        settings.warehouse_path,
        extract_changes(engine, marks),
        incremental=marks is not None,
        timezone=settings.timezone,
        tat_targets=settings.tat_targets,
        now=now,
    )
