"""Who may read which report, and refusals; shared by the report pages and the API."""

from __future__ import annotations

from typing import NoReturn

from apiflask import abort
from flask_login import current_user

from core.accounts import Role
from core.critical_results import CriticalResultError
from core.reports import ReportError, ReportStatus
from portal.extensions import db
from portal.security import audit_study
from storage.models.reports import Report
from storage.models.studies import Study
from storage.referrals import is_referred_to
from storage.reports import find_report


def load_readable_report(study: Study) -> tuple[Study, Report | None]:
    """The study's report as the current user may see it. Referrers see only final reports
    of studies referred by them; anything else is 'not found' to them, drafts included."""
    report = find_report(db.session, study)
    if current_user.role == Role.REFERRER and not (
        report is not None
        and report.status == ReportStatus.FINAL
        and is_referred_to(study, current_user.user)
    ):
        audit_study("view_report", study.study_instance_uid, "denied")
        db.session.commit()
        abort(404, "no final report of this study is available to you")
    return study, report


def refuse(action: str, study_uid: str, error: ReportError | CriticalResultError) -> NoReturn:
    """Audit the refusal and answer with the workflow's status (403, 409, 422, 428)."""
    db.session.rollback()
    audit_study(action, study_uid, "denied", detail=str(error))
    db.session.commit()
    abort(error.status, str(error))
