"""Reports through the API: read, save drafts (ETag/If-Match), sign, add addenda."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Integer, List, Nested, String
from apiflask.validators import Length
from flask import Response, current_app, jsonify, request
from flask_login import current_user
from marshmallow import RAISE

from core.accounts import CLINICAL_READERS, Role
from core.critical_results import CriticalResultError, parse_category
from core.reports import (
    MAX_ADDENDUM_LENGTH,
    MAX_SECTION_LENGTH,
    SECTIONS,
    ReportAction,
    ReportError,
    make_etag,
    parse_etag,
)
from portal.api import bp
from portal.api.studies import require_study
from portal.critical_results import flag_on_signature
from portal.extensions import db
from portal.report_access import load_readable_report, refuse
from portal.security import audit_study, roles, utc_now
from storage.models.reports import Report, ReportDocument
from storage.models.studies import Study
from storage.reports import add_addendum, save_draft, sign_report

SectionField = String(allow_none=True, validate=Length(max=MAX_SECTION_LENGTH))


class DraftIn(Schema.from_dict({name: SectionField for name in SECTIONS}, name="DraftSections")):  # type: ignore[misc]
    template_key = String(validate=Length(max=64))


class AddendumIn(Schema):
    text = String(required=True, validate=Length(min=1, max=MAX_ADDENDUM_LENGTH))


class DocumentOut(Schema):
    sequence = Integer()
    kind = String()
    signed_by = String()
    signer_name = String()
    signed_at = DateTime()
    sop_instance_uid = String()
    series_instance_uid = String()
    addendum_text = String()
    archived = Boolean()
    archived_at = DateTime(allow_none=True)


class ReportOut(Schema):
    study_instance_uid = String()
    status = String(allow_none=True, metadata={"description": "null before the first save"})
    version = Integer()
    sections = Nested(Schema.from_dict({name: String() for name in SECTIONS}, name="Sections"))
    template_key = String()
    updated_at = DateTime(allow_none=True)
    updated_by = String()
    archived = Boolean(metadata={"description": "every signed document is in the archive"})
    documents = List(Nested(DocumentOut))


def describe_report(study: Study, report: Report | None) -> dict[str, Any]:
    documents = report.documents if report is not None else []
    return {
        "study_instance_uid": study.study_instance_uid,
        "status": report.status if report else None,
        "version": report.version if report else 0,
        "sections": report.sections if report else dict.fromkeys(SECTIONS, ""),
        "template_key": report.template_key if report else "",
        "updated_at": report.updated_at if report else None,
        "updated_by": report.updated_by if report else "",
        "archived": all(d.archived_at is not None for d in documents),
        "documents": [describe_document(d) for d in documents],
    }


def describe_document(document: ReportDocument) -> dict[str, Any]:
    return {
        **{name: getattr(document, name) for name in DocumentOut().fields if name != "archived"},
        "archived": document.archived_at is not None,
    }


def answer(study: Study, report: Report | None, status: int = 200) -> Response:
    response = jsonify(ReportOut().dump(describe_report(study, report)))
    response.status_code = status
    response.headers["ETag"] = make_etag(report.version if report else 0)
    return response


@bp.get("/studies/<study_uid>/report")
@roles(*CLINICAL_READERS)
@bp.output(ReportOut)
@bp.doc(summary="The report: radiologists and admins see drafts, referrers only final reports")
def get_report(study_uid: str) -> Response:
    study, report = load_readable_report(require_study(study_uid))
    audit_study("view_report", study_uid)
    db.session.commit()
    return answer(study, report)


@bp.put("/studies/<study_uid>/report")
@roles(Role.RADIOLOGIST)
@bp.input(DraftIn, arg_name="draft", unknown=RAISE)
@bp.output(ReportOut)
@bp.doc(
    summary="Save the draft; send If-Match with the ETag you read (a stale one gets 409)",
    responses={409: "final report, or changed elsewhere", 428: "If-Match missing"},
)
def put_report(study_uid: str, draft: dict[str, Any]) -> Response:
    study = require_study(study_uid, for_update=True)
    template_key = draft.pop("template_key", None)
    expected = parse_etag(request.headers.get("If-Match"))
    try:
        report = save_draft(
            db.session,
            study,
            current_user.user,
            draft,
            expected,
            utc_now(),
            template_key=template_key,
        )
    except ReportError as error:
        refuse("report_save", study_uid, error)
    audit_study("report_save", study_uid, detail=f"version {report.version}")
    db.session.commit()
    return answer(study, report)


def sign(study_uid: str, action: ReportAction) -> Response:
    """Sign; a body `{"critical": CATEGORY}` also flags the report as a critical result."""
    study = require_study(study_uid, for_update=True)
    expected = parse_etag(request.headers.get("If-Match"))
    try:
        critical = read_critical_category(request.get_json(silent=True))
        document = sign_report(db.session, study, current_user.user, action, expected, utc_now())
        flag_on_signature(study, document, critical)
    except (ReportError, CriticalResultError) as error:
        refuse(f"report_{action}", study_uid, error)
    return commit_and_archive(study, document, f"report_{action}")


def read_critical_category(body: object) -> str | None:
    """The signature's optional body: nothing, or {"critical": null | CATEGORY}."""
    if body is None or body == {}:
        return None
    if not isinstance(body, dict) or set(body) - {"critical"}:
        raise CriticalResultError('the signature takes no body but {"critical": CATEGORY}')
    critical = body.get("critical")
    return None if critical is None else parse_category(critical).value


def commit_and_archive(study: Study, document: ReportDocument, action: str) -> Response:
    """The signature is committed (the outbox row); the SR follows off the request
    (portal/report_delivery.py), so the click never waits for the archive."""
    audit_study(action, study.study_instance_uid, detail=document.sop_instance_uid)
    db.session.commit()
    current_app.extensions["pacs_report_delivery"].submit(document.id)
    return answer(study, document.report, 201)


@bp.post("/studies/<study_uid>/report/preliminary")
@roles(Role.RADIOLOGIST)
@bp.output(ReportOut, status_code=201)
@bp.doc(summary="Sign the saved text as a preliminary report (SR: PARTIAL, UNVERIFIED)")
def sign_preliminary(study_uid: str) -> Response:
    return sign(study_uid, ReportAction.PRELIMINARY)


@bp.post("/studies/<study_uid>/report/finalize")
@roles(Role.RADIOLOGIST)
@bp.output(ReportOut, status_code=201)
@bp.doc(summary="Sign the saved text as the final report (SR: COMPLETE, VERIFIED); immutable")
def sign_final(study_uid: str) -> Response:
    return sign(study_uid, ReportAction.FINAL)


@bp.post("/studies/<study_uid>/report/addenda")
@roles(Role.RADIOLOGIST)
@bp.input(AddendumIn, arg_name="addendum")
@bp.output(ReportOut, status_code=201)
@bp.doc(summary="Add a signed addendum to a final report (a new SR referencing the previous)")
def post_addendum(study_uid: str, addendum: dict[str, str]) -> Response:
    study = require_study(study_uid, for_update=True)
    try:
        document = add_addendum(db.session, study, current_user.user, addendum["text"], utc_now())
    except ReportError as error:
        refuse("report_addendum", study_uid, error)
    return commit_and_archive(study, document, "report_addendum")
