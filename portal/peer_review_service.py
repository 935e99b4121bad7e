"""Peer review for the pages and the API: scoring, assignments, the discussion queue and
what each role may see of them. Every step, and every refusal, is audited."""

from __future__ import annotations

import secrets
from typing import Any, NoReturn

from apiflask import abort
from flask import current_app
from flask_login import current_user

from core.peer_review import (
    MAX_SEED_LENGTH,
    PeerReviewError,
    clean_text,
    may_see_review,
    may_see_reviewer,
    parse_period,
)
from portal.extensions import db
from portal.security import audit, audit_study, utc_now
from storage.assignments import find_listed_study
from storage.models.peer_review import PeerReview
from storage.models.studies import Study
from storage.peer_review import (
    PriorReport,
    ReviewSummary,
    assign_chosen_study,
    assign_random_sample,
    find_colleague_priors,
    list_reviews,
    record_outcome,
    score_report,
    summarize_reviews,
)


def refuse(action: str, error: PeerReviewError, study_uid: str = "") -> NoReturn:
    db.session.rollback()
    if study_uid:
        audit_study(action, study_uid, "denied", detail=str(error))
    else:
        audit(action, "denied", object_type="peer_review", detail=str(error))
    db.session.commit()
    abort(error.status, str(error))


def require_study(study_uid: str, action: str) -> Study:
    study = find_listed_study(db.session, study_uid) if study_uid else None
    if study is None:
        refuse(action, PeerReviewError(f"no study {study_uid!r}", 404))
    return study


def colleague_priors(study: Study) -> list[PriorReport]:
    """Priors of `study` a colleague reported, for the radiologist reading it."""
    return find_colleague_priors(db.session, study, current_user.user)


def score(prior_uid: str, score_text: str, comment: str, context_uid: str) -> PeerReview:
    """The current radiologist scores the prior `prior_uid` (read beside `context_uid`)."""
    prior = require_study(prior_uid, "peer_review_score")
    context = require_study(context_uid, "peer_review_score") if context_uid else None
    try:
        review = score_report(
            db.session,
            reviewer=current_user.user,
            prior=prior,
            score=score_text,
            comment=comment,
            context=context,
            now=utc_now(),
        )
    except PeerReviewError as error:
        refuse("peer_review_score", error, prior_uid)
    audit_study("peer_review_score", prior_uid, detail=f"review {review.id}: {review.score}")
    db.session.commit()
    return review


def assign_sample(period: str, seed: str, per_radiologist: int | None) -> tuple[str, list]:
    """An admin's random sample for a month; returns the seed used and the new reviews."""
    settings = current_app.config["PACS_SETTINGS"]
    try:
        month = parse_period(period)
        used_seed = clean_text(seed, MAX_SEED_LENGTH, "the seed") or secrets.token_hex(8)
        count = settings.peer_review_sample if per_radiologist is None else per_radiologist
        if not 0 <= count <= 100:
            raise PeerReviewError("reports per radiologist must be between 0 and 100")
        created = assign_random_sample(
            db.session,
            period=month,
            per_radiologist=count,
            seed=used_seed,
            actor=current_user.user,
            now=utc_now(),
        )
    except PeerReviewError as error:
        refuse("peer_review_assign", error)
    audit(
        "peer_review_assign",
        object_type="peer_review_sample",
        object_id=month,
        detail=f"seed={used_seed} per_radiologist={count} new={len(created)}",
    )
    db.session.commit()
    return used_seed, created


def assign_study(study_uid: str, reviewer_email: str) -> PeerReview:
    study = require_study(study_uid, "peer_review_assign")
    try:
        review = assign_chosen_study(
            db.session,
            study=study,
            reviewer_email=reviewer_email,
            actor=current_user.user,
            now=utc_now(),
        )
    except PeerReviewError as error:
        refuse("peer_review_assign", error, study_uid)
    audit_study("peer_review_assign", study_uid, detail=f"review {review.id} -> {reviewer_email}")
    db.session.commit()
    return review


def decide(review_id: int, outcome: str, revised_score: str, note: str) -> PeerReview:
    try:
        review = record_outcome(
            db.session,
            review_id,
            outcome=outcome,
            revised_score=revised_score,
            note=note,
            actor=current_user.user,
            now=utc_now(),
        )
    except PeerReviewError as error:
        refuse("peer_review_outcome", error)
    audit_study(
        "peer_review_outcome",
        review.study.study_instance_uid,
        detail=f"review {review.id}: {review.outcome} {review.outcome_score}".strip(),
    )
    db.session.commit()
    return review


def visible_reviews(*, discussion: str | None = None) -> list[PeerReview]:
    """Every review for admins; a radiologist's own (written or about their reports)."""
    me = current_user.user_id
    if current_user.role == "admin":
        return list_reviews(db.session, discussion=discussion)
    written = list_reviews(db.session, reviewer_id=me, discussion=discussion)
    received = list_reviews(db.session, reviewee_id=me, discussion=discussion, scored=True)
    merged = {review.id: review for review in [*written, *received]}
    return [merged[key] for key in sorted(merged, reverse=True)]


def describe(review: PeerReview) -> dict[str, Any]:
    """A review as the current user may see it (the reviewer hidden when they may not)."""
    me, role = current_user.user_id, str(current_user.role)
    if not may_see_review(
        viewer_role=role,
        viewer_id=me,
        reviewer_id=review.reviewer_id,
        reviewee_id=review.reviewee_id,
    ):
        abort(404, "no such peer review")
    reveal = current_app.config["PACS_SETTINGS"].peer_review_reveal_reviewers
    shown = may_see_reviewer(
        viewer_role=role, viewer_id=me, reviewer_id=review.reviewer_id, reveal=reveal
    )
    return {
        "id": review.id,
        "study_uid": review.study.study_instance_uid,
        "accession_number": review.study.accession_number,
        "modality": review.modality,
        "source": review.source,
        "period": review.period,
        "assigned_at": review.assigned_at,
        "score": review.score or None,
        "comment": review.comment,
        "scored_at": review.scored_at,
        "radiologist": review.reviewee.email,
        "reviewer": review.reviewer.email if shown else None,
        "discussion": review.discussion or None,
        "outcome": review.outcome or None,
        "outcome_score": review.outcome_score or None,
        "outcome_note": review.outcome_note,
        "outcome_at": review.outcome_at,
        "mine_to_score": review.reviewer_id == me and not review.score,
    }


def audit_list(what: str, count: int) -> None:
    audit("view_peer_reviews", object_type="peer_reviews", detail=f"{what}: {count}")
    db.session.commit()


def summary() -> ReviewSummary:
    """Aggregates for managers and admins: counts and rates, never text or reviewers."""
    result = summarize_reviews(db.session)
    audit("view_peer_review_summary", object_type="peer_reviews")
    db.session.commit()
    return result
