"""`pacs demo`: a demo department. One demo user per role, today's demo studies into the
archive by C-STORE, eight weeks of earlier work read and signed (pacs/demo_history.py), two
quarantined studies, a finished research export, and the warehouse built from it all.

Studies already complete in the archive, history already recorded and an export already
made are skipped, so running it again sends nothing and duplicates nothing.
"""

from __future__ import annotations

import datetime
import secrets
import time
from typing import Protocol, TextIO

from config.settings import Settings
from core.accounts import Role
from demo.studies import REFERRING_HOUSE, DemoStudy, build_demo_studies
from pacs.demo_history import history_datasets, record_history, request_demo_export, send_missing
from pacs.demo_orders import place_demo_orders
from pacs.engine import use_engine
from pacs.modality_commands import register_local_callers
from storage.accounts import create_user, find_user
from storage.archive import ArchiveClient
from storage.database import open_session

DEMO_AET = "PACS-DEMO"


class DemoPipeline(Protocol):
    """What the demo hands to `pacs up`'s pipeline (pacs.pipeline.EmbeddedPipeline)."""

    def submit_export(self, export_id: int) -> None: ...

    def request_refresh(self) -> None: ...


def run_demo(settings: Settings, *, out: TextIO, pipeline: DemoPipeline | None = None) -> None:
    """The whole demo: users first (the history is read by the demo radiologists), their
    passwords last, where they are seen.

    Given the running platform's `pipeline`, the export and the warehouse refresh are handed
    to it; else they run here, in-process, against the site's Prefect server."""
    started = time.monotonic()
    created = create_demo_users(settings)
    load_demo(settings, out=out)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    history = record_history(settings, now=now, out=out)
    sent = send_missing(settings, history_datasets(history, now, settings.timezone), DEMO_AET)
    if sent:
        out.write(f"demo: sent {sent} instances of earlier and quarantined studies\n")
    export_id = request_demo_export(settings, now)
    if pipeline is not None:
        if export_id is not None:
            pipeline.submit_export(export_id)
            out.write(f"demo: research export {export_id} for researcher@demo.example queued\n")
        pipeline.request_refresh()
    elif sent or export_id is not None:
        run_demo_flows(settings, export_id, out)
    show_demo_users(created, out)
    out.write(f"demo: ready in {time.monotonic() - started:.1f} s\n")


def run_demo_flows(settings: Settings, export_id: int | None, out: TextIO) -> None:
    """The researcher's export and a warehouse refresh, as the pipeline would run them."""
    with use_engine(settings):
        from flows.export_research import export_research
        from flows.refresh_warehouse import refresh_warehouse

        if export_id is not None:
            outcome = export_research(export_id)
            out.write(
                f"demo: research export {export_id} for researcher@demo.example: "
                f"{outcome.exported} instances de-identified\n"
            )
        refresh_warehouse()


def load_demo(settings: Settings, *, out: TextIO) -> int:
    """Send every demo study the archive lacks; returns the number of instances sent.

    The demo's calling AE is registered on 127.0.0.1 first, as a modality would be.
    """
    studies = build_demo_studies(datetime.date.today())
    place_demo_orders(settings, studies, out=out)
    register_local_callers(settings, [DEMO_AET], "pacs demo: sends the demo studies")
    with ArchiveClient.from_settings(settings) as client:
        missing = [study for study in studies if not is_stored(client, study)]
    if not missing:
        out.write(f"demo: all {len(studies)} demo studies are already in the archive\n")
        return 0
    sent = send_missing(settings, [ds for study in missing for ds in study.datasets], DEMO_AET)
    out.write(
        f"demo: sent {sent} instances in {len(missing)} studies "
        f"({len(studies) - len(missing)} already stored)\n"
    )
    return sent


DEMO_USERS = (
    ("admin@demo.example", Role.ADMIN, "Ada Admin", ""),
    ("radiologist@demo.example", Role.RADIOLOGIST, "Dr Rita Radiologist", ""),
    ("radiologist2@demo.example", Role.RADIOLOGIST, "Dr Ravi Reader", ""),
    ("referrer@demo.example", Role.REFERRER, "Dr Gregory House", REFERRING_HOUSE),
    ("manager@demo.example", Role.MANAGER, "Mona Manager", ""),
    ("researcher@demo.example", Role.RESEARCHER, "Rob Researcher", ""),
)


def create_demo_users(settings: Settings) -> list[tuple[str, Role, str]]:
    """One user per role, each with a fresh random password (shown once, never stored);
    returns those created now."""
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
    return created


def show_demo_users(created: list[tuple[str, Role, str]], out: TextIO) -> None:
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
