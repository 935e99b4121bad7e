"""Peer review pages: scoring priors and assigned reviews, admins' assignments and the
discussion queue, managers' aggregates. Roles: radiologists score and see their own;
admins assign, see everything (reviewers included) and record discussion outcomes;
managers see counts and rates only."""

from __future__ import annotations

from apiflask import HTTPError
from flask import Blueprint, flash, redirect, render_template, request, url_for

from core.accounts import ANALYTICS_ROLES, Role
from core.peer_review import MAX_COMMENT_LENGTH, SCORE_MEANINGS, DiscussionState, Outcome
from portal import peer_review_service as service
from portal.extensions import db
from portal.security import roles
from storage.accounts import list_radiologists

bp = Blueprint("peer_review", __name__, template_folder="../templates")
REVIEW_ROLES = (Role.RADIOLOGIST, Role.ADMIN)


@bp.app_context_processor
def peer_review_vocabulary() -> dict[str, object]:
    return {"SCORE_MEANINGS": SCORE_MEANINGS, "MAX_PEER_COMMENT_LENGTH": MAX_COMMENT_LENGTH}


@bp.get("/peer-review")
@roles(*REVIEW_ROLES)
def show_reviews():
    """A radiologist's reviews to do, written and received; an admin's every review."""
    reviews = [service.describe(review) for review in service.visible_reviews()]
    service.audit_list("page", len(reviews))
    return render_template(
        "peer_review/reviews.html",
        reviews=reviews,
        radiologists=list_radiologists(db.session),
    )


@bp.post("/peer-review/score")
@roles(Role.RADIOLOGIST)
def score():
    form = request.form
    back = form.get("next") or ""
    try:
        review = service.score(
            form.get("study_uid", ""),
            form.get("score", ""),
            form.get("comment", ""),
            form.get("context_study_uid", ""),
        )
    except HTTPError as error:
        flash(f"Not scored: {error.message}", "error")
    else:
        flash(f"Score {review.score} recorded for the prior report.", "info")
    return redirect(back if back.startswith("/") and not back.startswith("//") else "/peer-review")


@bp.post("/peer-review/assign")
@roles(Role.ADMIN)
def assign():
    form = request.form
    try:
        if form.get("study_uid"):
            service.assign_study(form.get("study_uid", ""), form.get("reviewer", ""))
            flash("Review assigned.", "info")
        else:
            count = form.get("per_radiologist", type=int)
            seed, created = service.assign_sample(
                form.get("period", ""), form.get("seed", ""), count
            )
            flash(f"{len(created)} reviews assigned (seed {seed}).", "info")
    except HTTPError as error:
        flash(f"Not assigned: {error.message}", "error")
    return redirect(url_for("peer_review.show_reviews"))


@bp.get("/peer-review/discussions")
@roles(Role.ADMIN)
def show_discussions():
    """The department's queue: 3b and 4b scores waiting for a discussion, then decided."""
    waiting = [service.describe(r) for r in service.visible_reviews(discussion="open")]
    decided = [service.describe(r) for r in service.visible_reviews(discussion="closed")]
    service.audit_list("discussions", len(waiting))
    return render_template(
        "peer_review/discussions.html",
        open_reviews=waiting,
        decided_reviews=decided,
        outcomes=list(Outcome),
    )


@bp.post("/peer-review/discussions/<int:review_id>")
@roles(Role.ADMIN)
def decide(review_id: int):
    form = request.form
    try:
        service.decide(
            review_id, form.get("outcome", ""), form.get("revised_score", ""), form.get("note", "")
        )
    except HTTPError as error:
        flash(f"Not recorded: {error.message}", "error")
    else:
        flash("Outcome recorded.", "info")
    return redirect(url_for("peer_review.show_discussions"))


@bp.get("/analytics/peer-review")
@roles(*ANALYTICS_ROLES)
def show_summary():
    """Reviews per radiologist and discrepancy rates by score and modality: no text."""
    return render_template(
        "peer_review/summary.html", summary=service.summary(), open_state=DiscussionState.OPEN
    )
