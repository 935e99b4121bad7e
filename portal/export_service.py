"""Research export requests, shared by the research pages and the API.

A researcher sees cohorts as counts only and their own requests; an admin sees every
request and decides. Every step is audited. Approval hands the export to the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import abort, current_app
from flask_login import current_user

from core.accounts import Role
from core.cohorts import Cohort
from core.deidentify import format_profile, parse_profile
from core.exports import ExportError, ExportNotFound, ExportState
from portal.extensions import db
from portal.security import audit, utc_now
from storage.exports import (
    CohortSize,
    create_export,
    decide_export,
    get_export,
    list_exports,
    measure_cohort,
)
from storage.models.exports import ResearchExport


def size_cohort(cohort: Cohort) -> CohortSize:
    size = measure_cohort(db.session, cohort)
    audit("cohort_size", object_type="cohort", detail=str(cohort.to_json())[:1024])
    db.session.commit()
    return size


def request_export(cohort: Cohort, profile: str, purpose: str) -> ResearchExport:
    """A new request, awaiting an admin's decision (ProfileError on a bad profile)."""
    export = create_export(
        db.session,
        cohort=cohort,
        profile=format_profile(parse_profile(profile)),
        purpose=purpose,
        requested_by=current_user.email,
        requester_id=current_user.user.id,
        now=utc_now(),
    )
    audit("export_request", object_type="export", object_id=str(export.id), detail=purpose)
    db.session.commit()
    return export


def decide(export_id: int, *, approve: bool, reason: str) -> ResearchExport:
    """An admin approves (the export starts) or rejects (with the reason) a request."""
    try:
        export = decide_export(
            db.session,
            export_id,
            approve=approve,
            reason=reason,
            by=current_user.email,
            now=utc_now(),
        )
    except ExportError as error:
        db.session.rollback()
        abort(error.status, str(error))
    action = "export_approve" if approve else "export_reject"
    audit(action, object_type="export", object_id=str(export_id), detail=reason)
    db.session.commit()
    dispatcher = current_app.extensions.get("pacs_dispatcher")
    if approve and dispatcher is not None:
        dispatcher.submit_export(export_id)
    return export


def visible_exports() -> list[ResearchExport]:
    """Everyone's for admins; a researcher's own for researchers."""
    mine = None if current_user.role == Role.ADMIN else current_user.user.id
    exports = list_exports(db.session, mine)
    audit("view_exports", object_type="export")
    db.session.commit()
    return exports


def visible_export(export_id: int) -> ResearchExport:
    """One export its requester (or an admin) may see; anyone else gets 404."""
    export = find_export(export_id)
    if export is None or (
        current_user.role != Role.ADMIN and export.requester_id != current_user.user.id
    ):
        abort(404, f"no export {export_id} of yours")
    return export


def downloadable_zip(export_id: int) -> Path:
    """The ZIP of the requester's own finished export; nobody else's, not even an admin's."""
    export = find_export(export_id)
    if export is None or export.requester_id != current_user.user.id:
        audit("export_download", "denied", object_type="export", object_id=str(export_id))
        db.session.commit()
        abort(404, f"no export {export_id} of yours")
    path = Path(export.destination)
    if export.state != ExportState.DONE or path.suffix != ".zip" or not path.is_file():
        abort(409, f"export {export_id} has no ZIP to download (state {export.state})")
    audit("export_download", object_type="export", object_id=str(export_id))
    db.session.commit()
    return path


def find_export(export_id: int) -> ResearchExport | None:
    try:
        return get_export(db.session, export_id)
    except ExportNotFound:
        return None


def describe_export(export: ResearchExport) -> dict[str, Any]:
    """What the API and pages show: no salt, no source identity."""
    return {
        "id": export.id,
        "state": export.state,
        "requested_by": export.requested_by,
        "purpose": export.purpose,
        "cohort": export.cohort,
        "profile": export.profile,
        "requested_at": export.requested_at,
        "decided_at": export.decided_at,
        "decided_by": export.decided_by,
        "reason": export.reason,
        "started_at": export.started_at,
        "finished_at": export.finished_at,
        "progress": {
            "total": export.total_instances,
            "processed": export.processed_instances,
            "exported": export.exported_instances,
            "excluded": export.excluded_instances,
            "withheld": export.withheld_instances,
        },
        "report": export.report,
        "downloadable": export.state == ExportState.DONE
        and export.destination.endswith(".zip")
        and export.requester_id == current_user.user.id,
    }
