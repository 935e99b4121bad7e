"""A study's priors through the API: the patient's other studies the caller may see."""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Boolean, Date, List, Nested, String
from flask_login import current_user

from core.accounts import CLINICAL_READERS, Role
from portal.api import bp
from portal.api.studies import require_study
from portal.extensions import db
from portal.priors import list_visible_priors
from portal.security import audit_study, audit_study_read, roles
from portal.viewer import compare_url
from storage.referrals import REPORTED, is_referred_to


class PriorOut(Schema):
    study_instance_uid = String()
    study_date = Date(allow_none=True)
    modalities = List(String())
    body_part = String()
    description = String()
    status = String()
    impression = String(metadata={"description": "of its final report, else empty"})
    relevant = Boolean(metadata={"description": "same modality or body part"})
    comparison = String(metadata={"description": "the report's comparison line for it"})
    compare_url = String(metadata={"description": "both studies side by side in the viewer"})


class PriorList(Schema):
    items = List(Nested(PriorOut))


@bp.get("/studies/<study_uid>/priors")
@roles(*CLINICAL_READERS)
@bp.output(PriorList)
@bp.doc(summary="The patient's other studies (same Patient ID and issuer), newest first")
def get_priors(study_uid: str) -> dict[str, Any]:
    """A referrer asks only about a reported study of theirs, and hears only of such priors."""
    study = require_study(study_uid)
    if current_user.role == Role.REFERRER and not (
        study.status in REPORTED and is_referred_to(study, current_user.user)
    ):
        audit_study("view_priors", study_uid, "denied")
        db.session.commit()
        abort(404, f"no study {study_uid} available to you")
    priors = list_visible_priors(study)
    audit_study_read("view_priors", study_uid)  # once an hour per user and study
    db.session.commit()
    return {
        "items": [
            {
                **vars(prior),
                "modalities": prior.modalities.split("\\") if prior.modalities else [],
                "comparison": prior.comparison,
                "compare_url": compare_url(study_uid, prior.study_instance_uid),
            }
            for prior in priors
        ]
    }
