"""Releasing and deleting quarantined studies, shared by the admin page and the API."""

from __future__ import annotations

from flask import current_app
from flask_login import current_user

from core.quarantine import QuarantineState
from portal.extensions import db
from portal.security import audit, utc_now
from storage.archive import ArchiveClient
from storage.studies import resolve_quarantine


def release_quarantined(key: str) -> str:
    """Re-validate and ingest with errors overridden; the pipeline picks it up at once."""
    orthanc_id = resolve_quarantine(
        db.session, key, QuarantineState.RELEASED, current_user.email, utc_now()
    )
    audit("quarantine_release", object_type="study", object_id=orthanc_id)
    db.session.commit()
    dispatcher = current_app.extensions.get("pacs_dispatcher")
    if dispatcher is not None:
        dispatcher.submit(orthanc_id)
    return orthanc_id


def delete_quarantined(key: str) -> str:
    """Delete the study from the archive; the entry stays, marked deleted, as history."""
    orthanc_id = resolve_quarantine(
        db.session, key, QuarantineState.DELETED, current_user.email, utc_now()
    )
    with ArchiveClient.from_settings(current_app.config["PACS_SETTINGS"]) as client:
        client.delete_study(orthanc_id)  # on failure the request's transaction is dropped
    audit("quarantine_delete", object_type="study", object_id=orthanc_id)
    db.session.commit()
    return orthanc_id
