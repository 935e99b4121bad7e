"""The `pacs` command line: one entry point for operators and scripts.

Every failure the user can act on ends with exit status 1 and one line on
stderr that says what to do; nothing prints a stack trace for them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from config.settings import Settings, SettingsError, load_settings
from core.identity import IdentityDecision
from core.modalities import ModalityError
from pacs import (
    audit_commands,
    db_commands,
    import_commands,
    ingest_commands,
    modality_commands,
    orthanc_server,
    peer_review_commands,
    user_commands,
    warehouse_commands,
)
from pacs.backup import BackupError
from pacs.engine import EngineError
from pacs.export_commands import add_export_parser
from pacs.hl7_commands import Hl7CommandError, add_hl7_parser
from pacs.restore import check_not_restoring
from storage.archive import ArchiveError
from storage.dicom_sender import DicomSendError
from storage.import_sender import DEFAULT_WORKERS
from storage.schema import SchemaError
from warehouse.build import WarehouseError

EXPECTED_ERRORS = (
    ingest_commands.CommandError,
    SettingsError,
    ArchiveError,
    orthanc_server.OrthancServerError,
    DicomSendError,
    ModalityError,
    WarehouseError,
    Hl7CommandError,
    EngineError,
    SchemaError,
    BackupError,
    OSError,
)

# Commands that use the operational database bring its schema up to date first (the
# operator runs them), as `pacs up` does; the portal and the pipeline's flows refuse a
# database that is behind instead.
DATABASE_COMMANDS = {
    "demo",
    "ingest",
    "quarantine",
    "import",
    "export",
    "user",
    "warehouse",
    "peer-review",
}
# Commands that serve the site refuse a home whose restore has not finished (pacs/restore.py).
SERVING_COMMANDS = {
    ("up", None),
    ("portal", None),
    ("worker", None),
    ("engine", "up"),
    ("orthanc", "start"),
    ("orders", "serve"),
}


def run_orthanc_start(settings: Settings, args: argparse.Namespace) -> int:
    process = orthanc_server.start_orthanc(settings)
    print(
        f"Orthanc started (pid {process.pid}): HTTP 127.0.0.1:{settings.orthanc_http_port}, "
        f"DICOM {settings.orthanc_aet}@{settings.orthanc_dicom_port}, "
        f"data in {settings.orthanc_dir}"
    )
    return 0


def run_orthanc_stop(settings: Settings, args: argparse.Namespace) -> int:
    pid = orthanc_server.stop_orthanc(settings)
    print(f"Orthanc stopped (pid {pid})" if pid else "Orthanc was not running")
    return 0


def run_orthanc_status(settings: Settings, args: argparse.Namespace) -> int:
    print(orthanc_server.read_status(settings).describe())
    return 0


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    from pacs.console import configure_logging
    from pacs.demo import run_demo as run_whole_demo

    configure_logging(settings, verbose=args.verbose)
    run_whole_demo(settings, out=sys.stdout)
    return 0


def run_up(settings: Settings, args: argparse.Namespace) -> int:
    from pacs.up import run_platform

    return run_platform(settings, load_demo_data=args.demo, verbose=args.verbose)


def run_status(settings: Settings, args: argparse.Namespace) -> int:
    from pacs.status_command import print_status

    return print_status(settings, sys.stdout)


def run_engine_up(settings: Settings, args: argparse.Namespace) -> int:
    from pacs.engine_commands import run_engine_up

    return run_engine_up(settings)


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    from pacs.worker import run_worker

    return run_worker(settings, healthcheck=args.healthcheck)


def run_portal(settings: Settings, args: argparse.Namespace) -> int:
    from pacs.portal_server import run_portal

    return run_portal(settings, args.workers)


def run_order_services(settings: Settings, args: argparse.Namespace) -> int:
    from pacs.order_services import serve_order_services

    return serve_order_services(settings)


def run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    if args.status:
        return ingest_commands.print_status(settings, sys.stdout)
    return ingest_commands.run_reconcile(
        settings, args.since, sys.stdout, accept_removals=args.accept_removals
    )


def run_quarantine_list(settings: Settings, args: argparse.Namespace) -> int:
    return ingest_commands.print_quarantine(settings, sys.stdout)


def run_quarantine_release(settings: Settings, args: argparse.Namespace) -> int:
    return ingest_commands.release_study(
        settings, args.study, f"cli:{getpass.getuser()}", sys.stdout, args.identity
    )


def run_quarantine_delete(settings: Settings, args: argparse.Namespace) -> int:
    return ingest_commands.delete_study(
        settings, args.study, f"cli:{getpass.getuser()}", sys.stdout
    )


def run_import(settings: Settings, args: argparse.Namespace) -> int:
    return import_commands.run_import(
        settings,
        args.paths,
        as_json=args.json,
        workers=args.workers,
        out=sys.stdout,
        err=sys.stderr,
    )


def run_user_add(settings: Settings, args: argparse.Namespace) -> int:
    return user_commands.add_user(
        settings,
        args.email,
        args.role,
        args.name,
        args.dicom_name,
        sys.stdout,
        temporary=args.temporary,
    )


def run_user_change(settings: Settings, args: argparse.Namespace) -> int:
    return user_commands.change_user(settings, args.email, args.action, sys.stdout)


def run_user_set_password(settings: Settings, args: argparse.Namespace) -> int:
    return user_commands.change_password(settings, args.email, args.temporary, sys.stdout)


def run_peer_review_assign(settings: Settings, args: argparse.Namespace) -> int:
    return peer_review_commands.assign_sample(
        settings,
        month=args.month,
        by=args.by,
        seed=args.seed,
        per_radiologist=args.per_radiologist,
        out=sys.stdout,
    )


def run_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    return audit_commands.verify_audit(settings, sys.stdout)


def run_user_list(settings: Settings, args: argparse.Namespace) -> int:
    return user_commands.print_users(settings, sys.stdout)


def run_modality_add(settings: Settings, args: argparse.Namespace) -> int:
    return modality_commands.add(
        settings, args.aet, args.host, args.port, args.description, sys.stdout
    )


def run_modality_list(settings: Settings, args: argparse.Namespace) -> int:
    return modality_commands.print_modalities(settings, sys.stdout)


def run_modality_remove(settings: Settings, args: argparse.Namespace) -> int:
    return modality_commands.remove(settings, args.aet, sys.stdout)


def run_viewer_install(settings: Settings, args: argparse.Namespace) -> int:
    from portal.viewer.bundle import OHIF_VERSION, BundleError, install_viewer_bundle

    try:
        installed = install_viewer_bundle(settings.viewer_dir)
    except BundleError as error:
        print(f"pacs: {error}", file=sys.stderr)
        return 1
    if installed:
        print(f"pacs: OHIF viewer {OHIF_VERSION} prepared in {settings.viewer_dir}")
    else:
        print(f"pacs: OHIF viewer {OHIF_VERSION} already in {settings.viewer_dir}")
    return 0


def run_warehouse_refresh(settings: Settings, args: argparse.Namespace) -> int:
    return warehouse_commands.run_refresh(settings, args.full, sys.stdout)


def run_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    return db_commands.run_upgrade(settings, sys.stdout)


def run_db_current(settings: Settings, args: argparse.Namespace) -> int:
    return db_commands.print_current(settings, sys.stdout)


def run_db_history(settings: Settings, args: argparse.Namespace) -> int:
    return db_commands.print_history(settings, sys.stdout)


def run_backup(settings: Settings, args: argparse.Namespace) -> int:
    from pacs.backup import write_backup

    summary = write_backup(settings, Path(args.path).expanduser().absolute())
    print(
        f"pacs: backup of {summary.studies} studies ({summary.instances} instances) written "
        f"in {summary.seconds:.1f} s to {summary.folder}"
    )
    return 0


def run_restore(settings: Settings, args: argparse.Namespace) -> int:
    from pacs.restore import restore_backup

    summary = restore_backup(Path(args.path).expanduser().absolute(), os.environ, force=args.force)
    print(
        f"pacs: restored {summary.studies} studies ({summary.instances} instances) and "
        f"{summary.users} users in {summary.seconds:.1f} s into {settings.home}; "
        "`pacs up` serves them"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pacs", description="Radiology PACS platform: archive, pipeline, portal."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up", help="start Orthanc and the portal in the foreground until Ctrl-C"
    )
    up.add_argument("--demo", action="store_true", help="load the demo studies once up")
    up.add_argument(
        "--verbose", action="store_true", help="Prefect's run and task logs on the terminal too"
    )
    up.set_defaults(handler=run_up)

    status = commands.add_parser(
        "status", help="each part (archive, database, Prefect, pipeline, portal) and the backlog"
    )
    status.set_defaults(handler=run_status)

    engine = commands.add_parser("engine", help="the site's Prefect server (scaled out)")
    engine.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "up", help="run it in the foreground, with the work pool and deployments registered"
    ).set_defaults(handler=run_engine_up)

    worker = commands.add_parser(
        "worker", help="a pipeline worker for PREFECT_API_URL's server (run as many as you like)"
    )
    worker.add_argument(
        "--healthcheck", action="store_true", help="serve the Prefect worker's health on 8080"
    )
    worker.set_defaults(handler=run_worker)

    portal = commands.add_parser("portal", help="the portal alone, under gunicorn (scaled out)")
    portal.add_argument("--workers", type=int, help="processes (default PACS_PORTAL_WORKERS, 4)")
    portal.set_defaults(handler=run_portal)

    orders = commands.add_parser("orders", help="the order services (scaled out)")
    orders.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "serve",
        help="the HL7 listener and the Modality Worklist / MPPS SCP alone, in the foreground",
    ).set_defaults(handler=run_order_services)

    demo = commands.add_parser(
        "demo", help="a demo department: users, studies by C-STORE, eight weeks of history"
    )
    demo.add_argument(
        "--verbose", action="store_true", help="Prefect's run and task logs on the terminal too"
    )
    demo.set_defaults(handler=run_demo)

    ingest = commands.add_parser(
        "ingest", help="ingest what reached the archive since the last run (reconcile)"
    )
    ingest.add_argument(
        "--since", type=int, metavar="CHANGE", help="walk the changes after this sequence number"
    )
    ingest.add_argument("--status", action="store_true", help="print the pipeline's state")
    ingest.add_argument(
        "--accept-removals",
        action="store_true",
        help="mark removed every study the archive no longer has, however many",
    )
    ingest.set_defaults(handler=run_ingest)

    quarantine = commands.add_parser("quarantine", help="studies held back by validation")
    quarantine_actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    quarantine_actions.add_parser("list", help="open entries with their reasons").set_defaults(
        handler=run_quarantine_list
    )
    for name, handler, text in (
        ("release", run_quarantine_release, "re-validate and ingest, errors overridden"),
        ("delete", run_quarantine_delete, "delete the study from the archive"),
    ):
        action = quarantine_actions.add_parser(name, help=text)
        action.add_argument("study", help="Orthanc study id or Study Instance UID")
        action.set_defaults(handler=handler)
        if name == "release":
            action.add_argument(
                "--identity",
                choices=list(IdentityDecision),
                type=IdentityDecision,
                help="a reported study whose identity changed: keep the recorded identity "
                "or accept the new one",
            )

    imports = commands.add_parser(
        "import", help="send DICOM files, folders, ZIP archives and DICOMDIR media to the archive"
    )
    imports.add_argument("paths", nargs="+", metavar="PATH")
    imports.add_argument("--json", action="store_true", help="print the summary as JSON")
    imports.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="parallel uploads")
    imports.set_defaults(handler=run_import)

    add_export_parser(commands)
    add_hl7_parser(commands)

    user = commands.add_parser("user", help="portal accounts")
    user_actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = user_actions.add_parser(
        "add", help="add a user (password from stdin, or prompted twice on a terminal)"
    )
    add.add_argument("email")
    add.add_argument(
        "--role", required=True, help="admin, radiologist, referrer, manager, researcher"
    )
    add.add_argument("--name", default="", help="display name")
    add.add_argument(
        "--dicom-name", default="", help="a referrer's name as in Referring Physician's Name"
    )
    add.add_argument(
        "--temporary", action="store_true", help="the user must change it at first sign-in"
    )
    add.set_defaults(handler=run_user_add)
    user_actions.add_parser("list", help="every user with role and state").set_defaults(
        handler=run_user_list
    )
    for name, text in (
        ("disable", "refuse sign-in; ends every session and API token"),
        ("enable", "allow sign-in again"),
        ("unlock", "end the backoff after failed sign-ins"),
    ):
        change = user_actions.add_parser(name, help=text)
        change.add_argument("email")
        change.set_defaults(handler=run_user_change)
    password = user_actions.add_parser(
        "set-password",
        help="a new password (stdin, or prompted twice); ends every session and API token",
    )
    password.add_argument("email")
    password.add_argument(
        "--temporary", action="store_true", help="the user must change it at first sign-in"
    )
    password.set_defaults(handler=run_user_set_password)

    audit = commands.add_parser("audit", help="the audit trail")
    audit.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "verify", help="check the hash chain: exit 1 naming the first broken event"
    ).set_defaults(handler=run_audit_verify)

    peer = commands.add_parser("peer-review", help="peer review of final reports")
    assign = peer.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "assign", help="draw a month's random sample of each radiologist's final reports"
    )
    assign.add_argument("--month", required=True, help="the month the reports were signed, YYYY-MM")
    assign.add_argument("--by", required=True, help="the admin assigning (e-mail; audited)")
    assign.add_argument("--seed", help="the draw's seed (the same seed, the same sample)")
    assign.add_argument(
        "--per-radiologist", type=int, help="reports per radiologist (PACS_PEER_REVIEW_SAMPLE)"
    )
    assign.set_defaults(handler=run_peer_review_assign)

    modality = commands.add_parser(
        "modality", help="the modalities (AE titles) allowed to store, query and retrieve"
    )
    modality_actions = modality.add_subparsers(dest="action", required=True, metavar="ACTION")
    modality_add = modality_actions.add_parser("add", help="register a modality")
    modality_add.add_argument("aet", metavar="AET", help="its calling AE title")
    modality_add.add_argument("--host", required=True, help="the IP address it calls from")
    modality_add.add_argument(
        "--port", required=True, help="its DICOM port (where C-MOVE sends images)"
    )
    modality_add.add_argument("--description", default="", help="free text (room, model)")
    modality_add.set_defaults(handler=run_modality_add)
    modality_actions.add_parser("list", help="the registered modalities").set_defaults(
        handler=run_modality_list
    )
    modality_remove = modality_actions.add_parser("remove", help="unregister a modality")
    modality_remove.add_argument("aet", metavar="AET")
    modality_remove.set_defaults(handler=run_modality_remove)

    viewer = commands.add_parser("viewer", help="the OHIF image viewer bundle")
    viewer.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "install", help="fetch the pinned OHIF bundle from npm and prepare it for the portal"
    ).set_defaults(handler=run_viewer_install)

    warehouse = commands.add_parser("warehouse", help="the DuckDB analytics warehouse")
    refresh = warehouse.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "refresh", help="bring it up to date (incremental unless --full)"
    )
    refresh.add_argument("--full", action="store_true", help="rebuild from every row")
    refresh.set_defaults(handler=run_warehouse_refresh)

    backup = commands.add_parser(
        "backup", help="write a consistent, dated backup of the site under PATH (while it runs)"
    )
    backup.add_argument("path", metavar="PATH", help="the folder to write the backup into")
    backup.set_defaults(handler=run_backup)
    restore = commands.add_parser("restore", help="restore a backup into an empty PACS_HOME")
    restore.add_argument("path", metavar="PATH", help="a folder written by `pacs backup`")
    restore.add_argument(
        "--force", action="store_true", help="replace what PACS_HOME and its databases hold"
    )
    restore.set_defaults(handler=run_restore)

    db = commands.add_parser("db", help="the operational database's schema (migrations)")
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, text in (
        ("upgrade", run_db_upgrade, "bring the schema up to this release's (waits for another)"),
        ("current", run_db_current, "the database's revision and whether it is this release's"),
        ("history", run_db_history, "every revision, newest first"),
    ):
        db_actions.add_parser(name, help=text).set_defaults(handler=handler)

    orthanc = commands.add_parser("orthanc", help="the project's Orthanc archive")
    actions = orthanc.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, text in (
        ("start", run_orthanc_start, "start Orthanc in the background"),
        ("stop", run_orthanc_stop, "stop it cleanly (SIGTERM)"),
        ("status", run_orthanc_status, "version, ports and counts"),
    ):
        actions.add_parser(name, help=text).set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        settings = load_settings()
        if (args.command, getattr(args, "action", None)) in SERVING_COMMANDS:
            check_not_restoring(settings)
        if args.command in DATABASE_COMMANDS:
            db_commands.upgrade_schema(settings)
        return handler(settings, args)
    except EXPECTED_ERRORS as error:
        print(f"pacs: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
