"""Orthanc's study notifications, authenticated by the shared webhook secret.

Every kind (StableStudy, Deleted; NewStudy or StableSeries while a study arrives, per
PACS_WORKLIST_ARRIVING) starts `ingest_study`, which ingests the study as the archive holds
it: "arriving" until the archive calls it stable, complete after; or, finding it gone from
the archive, marks it removed.
"""

from __future__ import annotations

import hmac
import re

from apiflask import Schema, abort
from apiflask.fields import String
from apiflask.validators import Regexp
from flask import current_app, request

from portal.api import bp
from portal.security import public

NOTICES = ("StableStudy", "Deleted", "NewStudy", "StableSeries")
ORTHANC_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


class StableStudyNotice(Schema):
    ChangeType = String(required=True)
    ResourceType = String(load_default="Study")
    ID = String(required=True, validate=Regexp(ORTHANC_ID, error="not an Orthanc study id"))


class Queued(Schema):
    queued = String()


@bp.post("/hooks/orthanc")
@public
@bp.input(StableStudyNotice, arg_name="notice")
@bp.output(Queued, status_code=202)
@bp.doc(summary="Orthanc's study notification (header X-Pacs-Webhook-Secret)")
def receive_orthanc_notice(notice: dict[str, str]) -> dict[str, str]:
    expected = current_app.config["PACS_SETTINGS"].webhook_secret
    given = request.headers.get("X-Pacs-Webhook-Secret", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        abort(401, "missing or wrong webhook secret")
    if notice["ChangeType"] not in NOTICES or notice["ResourceType"] != "Study":
        abort(422, f"only {', '.join(NOTICES)} notifications of studies are accepted")
    dispatcher = current_app.extensions.get("pacs_dispatcher")
    if dispatcher is None:
        abort(503, "no ingestion pipeline runs here; reconciliation will ingest the study")
    dispatcher.submit(notice["ID"])
    return {"queued": notice["ID"]}
