"""`pacs demo`: the demo studies into the archive by C-STORE, and one demo user per role.

Studies already complete in the archive are skipped, so running it again
sends nothing and duplicates nothing.
"""

from __future__ import annotations

import datetime
import secrets
from typing import TextIO

from config.settings import Settings
from core.accounts import Role
from demo.studies import REFERRING_HOUSE, DemoStudy, build_demo_studies
from pacs.demo_orders import place_demo_orders
from pacs.modality_commands import register_local_callers
from storage.accounts import create_user, find_user
from storage.archive import ArchiveClient
from storage.database import open_session
from storage.dicom_sender import DicomSendError, send_datasets

DEMO_AET = "PACS-DEMO"


def load_demo(settings: Settings, *, out: TextIO) -> int:
    """Send every demo study the archive lacks; returns the number of instances sent.

    The demo's calling AE is registered on 127.0.0.1 first, as a modality would be.
    """
    studies = build_demo_studies(datetime.date.today())
    place_demo_orders(settings, studies, out=out)
    with ArchiveClient.from_settings(settings) as client:
        missing = [study for study in studies if not is_stored(client, study)]
    if not missing:
        out.write(f"demo: all {len(studies)} demo studies are already in the archive\n")
        return 0
    register_local_callers(settings, [DEMO_AET], "pacs demo: sends the demo studies")
    datasets = [ds for study in missing for ds in study.datasets]
    summary = send_datasets(
        datasets,
        host="127.0.0.1",
        port=settings.orthanc_dicom_port,
        called_aet=settings.orthanc_aet,
        calling_aet=DEMO_AET,
    )
    for sop_instance_uid, reason in summary.failed:
        out.write(f"demo: {sop_instance_uid} refused: {reason}\n")
    if summary.failed:
        raise DicomSendError(f"the archive refused {len(summary.failed)} demo instances")
    out.write(
        f"demo: sent {summary.sent} instances in {len(missing)} studies "
        f"({len(studies) - len(missing)} already stored)\n"
    )
    return summary.sent


DEMO_USERS = (
    ("admin@demo.example", Role.ADMIN, "Ada Admin", ""),
    ("radiologist@demo.example", Role.RADIOLOGIST, "Dr Rita Radiologist", ""),
    ("radiologist2@demo.example", Role.RADIOLOGIST, "Dr Ravi Reader", ""),
    ("referrer@demo.example", Role.REFERRER, "Dr Gregory House", REFERRING_HOUSE),
    ("manager@demo.example", Role.MANAGER, "Mona Manager", ""),
    ("researcher@demo.example", Role.RESEARCHER, "Rob Researcher", ""),
)


def create_demo_users(settings: Settings, *, out: TextIO) -> None:
    """One user per role, each with a fresh random password printed once (never stored)."""
    now = datetime.datetime.now(datetime.UTC)
    created = []
    with open_session(settings.database_url) as session:
        for email, role, name, dicom_name in DEMO_USERS:
            if find_user(session, email) is None:
                password = secrets.token_urlsafe(12)
                create_user(
                    session, email, password, role, now, display_name=name, dicom_name=dicom_name
                )
                created.append((email, role, password))
    if not created:
        out.write("demo: the demo users exist already (passwords were printed when created)\n")
        return
    out.write("demo: users created; their passwords are shown this once:\n")
    for email, role, password in created:
        out.write(f"  {role:<12} {email:<28} {password}\n")


def is_stored(client: ArchiveClient, study: DemoStudy) -> bool:
    """True when the archive holds every instance of the demo study."""
    ids = client.find_study_ids(study.study_instance_uid)
    if not ids:
        return False
    stored = client.get_json(f"/studies/{ids[0]}/statistics")["CountInstances"]
    return stored >= len(study.datasets)
