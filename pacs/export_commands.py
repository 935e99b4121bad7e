"""`pacs export`: a research export from the command line, the same flow as the portal's."""

from __future__ import annotations

import argparse
import datetime
import getpass
import sys
import threading
from typing import TextIO

from config.settings import Settings
from core.cohorts import CohortError, parse_cohort
from core.deidentify import ProfileError, format_profile, parse_profile
from core.exports import ExportError, ExportState
from pacs.engine import use_engine
from pacs.ingest_commands import CommandError
from storage.database import open_session
from storage.exports import (
    create_export,
    get_export,
    measure_cohort,
)

BAR_WIDTH = 30


def add_export_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="de-identify a cohort (PS3.15 Annex E) into a ZIP or the research archive"
    )
    export.add_argument("--modality", default="", help="studies with this modality")
    export.add_argument(
        "--from", dest="date_from", metavar="DATE", help="study date from (YYYY-MM-DD)"
    )
    export.add_argument("--to", dest="date_to", metavar="DATE", help="study date to (YYYY-MM-DD)")
    export.add_argument(
        "--study", action="append", default=[], metavar="UID", help="only this study (repeatable)"
    )
    export.add_argument(
        "--profile",
        default="basic",
        help="basic[,OPTION...]: "
        + ", ".join(
            [
                "modified-dates",
                "patient-characteristics",
                "device-identity",
                "institution-identity",
                "clean-descriptors",
                "structured-content",
                "safe-private",
            ]
        ),
    )
    export.add_argument(
        "--out", metavar="PATH", help="the ZIP to write (default PACS_HOME/exports/export-N.zip)"
    )
    export.add_argument("--purpose", default="command-line export", help="recorded with the export")
    export.add_argument(
        "--rerun", type=int, metavar="ID", help="run export ID again: same pseudonyms and UIDs"
    )
    export.add_argument("--workers", type=int, default=2, help="de-identification processes")
    export.set_defaults(handler=lambda settings, args: run_export(settings, args, sys.stdout))


def run_export(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    export_id = args.rerun or create_cli_export(settings, args)
    if args.rerun:
        with open_session(settings.database_url) as session:
            try:
                get_export(session, export_id)
            except ExportError as error:
                raise CommandError(str(error)) from None
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    done = threading.Event()
    progress = threading.Thread(
        target=show_progress, args=(settings, export_id, done, sys.stderr), daemon=True
    )
    progress.start()
    try:
        with use_engine(settings):
            from flows.export_research import export_research

            try:
                outcome = export_research(export_id, out_path=args.out, workers=args.workers)
            except ExportError as error:
                raise CommandError(str(error)) from None
    finally:
        done.set()
        progress.join()
    out.write(
        f"export {export_id}: {outcome.exported} instances exported, {outcome.excluded} excluded, "
        f"{outcome.withheld} withheld -> {outcome.destination}\n"
    )
    return 0


def create_cli_export(settings: Settings, args: argparse.Namespace) -> int:
    """An export approved by whoever runs the command (they can read the archive anyway)."""
    try:
        options = parse_profile(args.profile)
        cohort = parse_cohort(
            {
                "modality": args.modality,
                "date_from": args.date_from,
                "date_to": args.date_to,
                "study_uids": args.study,
            }
        )
    except (ProfileError, CohortError) as error:
        raise CommandError(str(error)) from None
    now = datetime.datetime.now(datetime.UTC)
    user = f"cli:{getpass.getuser()}"
    with open_session(settings.database_url) as session:
        if measure_cohort(session, cohort).studies == 0:
            raise CommandError("the cohort is empty: no ingested study matches (see `pacs ingest`)")
        export = create_export(
            session,
            cohort=cohort,
            profile=format_profile(options),
            purpose=args.purpose,
            requested_by=user,
            requester_id=None,
            now=now,
            state=ExportState.APPROVED,
        )
        export.decided_by, export.decided_at = user, now
        return export.id


def show_progress(settings: Settings, export_id: int, done: threading.Event, err: TextIO) -> None:
    """A progress bar on stderr from the export's counts in the database."""
    shown = False
    while True:
        finished = done.wait(0.5)
        with open_session(settings.database_url) as session:
            export = get_export(session, export_id)
            total, processed = export.total_instances, export.processed_instances
        if total and (err.isatty() or finished):
            filled = BAR_WIDTH * processed // total
            err.write(
                f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {processed}/{total} instances"
            )
            err.flush()
            shown = True
        if finished:
            if shown:
                err.write("\n")
            return
