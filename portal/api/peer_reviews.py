"""Peer review through the API: score, list what one may see, assign, discuss, aggregate."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import DateTime, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import RAISE

from core.accounts import ANALYTICS_ROLES, Role
from core.peer_review import MAX_COMMENT_LENGTH, MAX_NOTE_LENGTH, MAX_SEED_LENGTH
from portal import peer_review_service as service
from portal.api import bp
from portal.security import roles

REVIEW_ROLES = (Role.RADIOLOGIST, Role.ADMIN)


class ScoreIn(Schema):
    class Meta:
        unknown = RAISE

    study_uid = String(required=True, validate=Length(min=1, max=64))
    score = String(required=True, validate=Length(max=4))
    comment = String(load_default="", validate=Length(max=MAX_COMMENT_LENGTH))
    context_study_uid = String(load_default="", validate=Length(max=64))


class ReviewOut(Schema):
    id = Integer()
    study_uid = String()
    accession_number = String()
    modality = String()
    source = String()
    period = String()
    assigned_at = DateTime(allow_none=True)
    score = String(allow_none=True)
    comment = String()
    scored_at = DateTime(allow_none=True)
    radiologist = String()
    reviewer = String(allow_none=True, metadata={"description": "null when hidden from you"})
    discussion = String(allow_none=True)
    outcome = String(allow_none=True)
    outcome_score = String(allow_none=True)
    outcome_note = String()
    outcome_at = DateTime(allow_none=True)


class ReviewList(Schema):
    items = List(Nested(ReviewOut))


class ReviewQuery(Schema):
    discussion = String(validate=OneOf(["open", "closed"]))


class AssignIn(Schema):
    class Meta:
        unknown = RAISE

    period = String(validate=Length(max=7))
    seed = String(load_default="", validate=Length(max=MAX_SEED_LENGTH))
    per_radiologist = Integer(validate=Range(min=0, max=100))
    study_uid = String(validate=Length(max=64))
    reviewer = String(validate=Length(max=255))


class AssignOut(Schema):
    seed = String(allow_none=True)
    items = List(Nested(ReviewOut))


class OutcomeIn(Schema):
    class Meta:
        unknown = RAISE

    outcome = String(required=True, validate=Length(max=16))
    revised_score = String(load_default="", validate=Length(max=4))
    note = String(load_default="", validate=Length(max=MAX_NOTE_LENGTH))


class FiguresOut(Schema):
    group = String()
    reviews = Integer()
    scores = Dict(keys=String(), values=Integer())
    discrepancy_rate = Float()


class SummaryOut(Schema):
    by_radiologist = List(Nested(FiguresOut))
    by_modality = List(Nested(FiguresOut))
    open_discussions = Integer()


@bp.get("/peer-reviews")
@roles(*REVIEW_ROLES)
@bp.input(ReviewQuery, location="query", arg_name="query")
@bp.output(ReviewList)
@bp.doc(summary="Peer reviews you may see (admins: all; radiologists: theirs, reviewers hidden)")
def list_peer_reviews(query: dict[str, Any]):
    items = [service.describe(r) for r in service.visible_reviews(**query)]
    service.audit_list("api", len(items))
    return {"items": items}


@bp.post("/peer-reviews")
@roles(Role.RADIOLOGIST)
@bp.input(ScoreIn, arg_name="body")
@bp.output(ReviewOut, status_code=201)
@bp.doc(summary="Score a colleague's prior report (1, 2a..4b) or a review assigned to you")
def score_peer_review(body: dict[str, Any]):
    review = service.score(
        body["study_uid"], body["score"], body["comment"], body["context_study_uid"]
    )
    return service.describe(review)


@bp.post("/peer-reviews/assignments")
@roles(Role.ADMIN)
@bp.input(AssignIn, arg_name="body")
@bp.output(AssignOut, status_code=201)
@bp.doc(
    summary="Assign reviews: a month's random sample ({period, seed?, per_radiologist?}) "
    "or a chosen study ({study_uid, reviewer})"
)
def assign_peer_reviews(body: dict[str, Any]):
    if body.get("study_uid"):
        review = service.assign_study(body["study_uid"], body.get("reviewer", ""))
        return {"seed": None, "items": [service.describe(review)]}
    seed, created = service.assign_sample(
        body.get("period", ""), body["seed"], body.get("per_radiologist")
    )
    return {"seed": seed, "items": [service.describe(review) for review in created]}


@bp.post("/peer-reviews/<int:review_id>/outcome")
@roles(Role.ADMIN)
@bp.input(OutcomeIn, arg_name="body")
@bp.output(ReviewOut)
@bp.doc(summary="Record the department's discussion outcome of a 3b/4b score")
def decide_peer_review(review_id: int, body: dict[str, Any]):
    review = service.decide(review_id, body["outcome"], body["revised_score"], body["note"])
    return service.describe(review)


@bp.get("/analytics/peer-review")
@roles(*ANALYTICS_ROLES)
@bp.output(SummaryOut)
@bp.doc(summary="Reviews per radiologist, discrepancy rates by score and modality (no text)")
def peer_review_summary():
    summary = service.summary()
    return {
        "by_radiologist": [row.as_dict() for row in summary.by_radiologist],
        "by_modality": [row.as_dict() for row in summary.by_modality],
        "open_discussions": summary.open_discussions,
    }
