"""Releasing and deleting quarantined studies, shared by the admin page and the API."""

from __future__ import annotations

from flask import current_app
from flask_login import current_user

from core.identity import IdentityDecision
from core.quarantine import QuarantineState
from portal.extensions import db
from portal.security import audit, utc_now
from storage.archive import ArchiveClient
from storage.studies import resolve_quarantine


def release_quarantined(key: str, identity: IdentityDecision | None = None) -> str:
    """Re-validate and ingest with errors overridden; the pipeline picks it up at once.

    A reported study whose identity changed needs the admin's `identity` decision.
    """
    resolved = resolve_quarantine(
        db.session, key, QuarantineState.RELEASED, current_user.email, utc_now(), identity
    )
    audit(
        "quarantine_release",
        object_type="study",
        object_id=resolved.orthanc_id,
        study_uid=resolved.study_instance_uid[:64],
        detail=resolved.detail[:1024],
    )
    db.session.commit()
    dispatcher = current_app.extensions.get("pacs_dispatcher")
    if dispatcher is not None:
        dispatcher.submit(resolved.orthanc_id)
    return resolved.orthanc_id


def delete_quarantined(key: str) -> str:
    """Delete the study from the archive; the entry stays, marked deleted, as history."""
    orthanc_id = resolve_quarantine(
        db.session, key, QuarantineState.DELETED, current_user.email, utc_now()
    ).orthanc_id
    with ArchiveClient.from_settings(current_app.config["PACS_SETTINGS"]) as client:
        client.delete_study(orthanc_id)  # on failure the request's transaction is dropped
    audit("quarantine_delete", object_type="study", object_id=orthanc_id)
    db.session.commit()
    return orthanc_id
