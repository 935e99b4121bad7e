"""A study's priors as the current user may see them; shared by the study page, the report
pages and the API."""

from __future__ import annotations

from flask_login import current_user

from core.accounts import Role
from core.priors import PriorStudy
from portal.extensions import db
from storage.models.studies import Study
from storage.priors import list_priors


def list_visible_priors(study: Study) -> list[PriorStudy]:
    """Radiologists and admins see every prior; a referrer only their own reported ones."""
    referrer = current_user.user if current_user.role == Role.REFERRER else None
    return list_priors(db.session, study, referrer=referrer)
