"""Peer reviews in the operational database: priors reported by colleagues, scores,
assignments, the discussion queue and the managers' aggregates.

The rules are core/peer_review.py's; this module finds the rows, asks, and writes the
answer in the caller's transaction. A report's radiologist is the one who signed it final.
"""

from __future__ import annotations

import calendar
import datetime
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from core.accounts import Role
from core.peer_review import (
    MAX_COMMENT_LENGTH,
    DiscussionState,
    PeerReviewError,
    ReviewSource,
    Score,
    check_may_score,
    check_outcome,
    clean_text,
    discrepancy_rate,
    draw_sample,
    needs_discussion,
    parse_period,
    parse_score,
)
from core.records import StudyStatus
from core.reports import ReportAction, ReportStatus
from storage.accounts import list_radiologists
from storage.models.accounts import User
from storage.models.peer_review import PeerReview
from storage.models.reports import Report, ReportDocument
from storage.models.studies import Study

REPORTED = (StudyStatus.FINAL, StudyStatus.AMENDED)


def final_signers():
    """(report id, signer's user id, signed at) of every final signature."""
    return (
        select(
            ReportDocument.report_id.label("report_id"),
            User.id.label("signer_id"),
            ReportDocument.signed_at.label("signed_at"),
        )
        .join(User, User.email == ReportDocument.signed_by)
        .where(ReportDocument.kind == ReportAction.FINAL)
        .subquery()
    )


def find_signer_id(session: Session, report: Report) -> int | None:
    signers = final_signers()
    return session.scalar(select(signers.c.signer_id).where(signers.c.report_id == report.id))


@dataclass(frozen=True)
class PriorReport:
    """A prior of the study being read, reported final by a colleague."""

    study: Study
    report: Report
    signer_id: int
    my_review: PeerReview | None


def is_earlier(prior: Study, current: Study) -> bool:
    if prior.study_datetime and current.study_datetime:
        return prior.study_datetime < current.study_datetime
    if prior.study_date and current.study_date and prior.study_date != current.study_date:
        return prior.study_date < current.study_date
    return prior.received_at < current.received_at


def find_colleague_priors(session: Session, study: Study, reader: User) -> list[PriorReport]:
    """Earlier studies of the same patient (Patient ID and issuer) with a final report that
    another radiologist signed, newest first. (The priors feature may later provide this.)"""
    if not study.patient_id:
        return []
    signers = final_signers()
    rows = session.execute(
        select(Study, Report, signers.c.signer_id)
        .join(Report, Report.study_id == Study.id)
        .join(signers, signers.c.report_id == Report.id)
        .where(
            Study.patient_id == study.patient_id,
            Study.issuer_of_patient_id == study.issuer_of_patient_id,
            Study.id != study.id,
            Study.status.in_(REPORTED),
            Report.status == ReportStatus.FINAL,
            signers.c.signer_id != reader.id,
        )
    ).all()
    priors = [
        PriorReport(prior, report, signer_id, find_review(session, report.id, reader.id))
        for prior, report, signer_id in rows
        if is_earlier(prior, study)
    ]
    return sorted(priors, key=lambda item: item.study.received_at, reverse=True)


def find_review(session: Session, report_id: int, reviewer_id: int) -> PeerReview | None:
    return session.scalar(
        select(PeerReview).where(
            PeerReview.report_id == report_id, PeerReview.reviewer_id == reviewer_id
        )
    )


def get_review(session: Session, review_id: int) -> PeerReview:
    review = session.get(PeerReview, review_id)
    if review is None:
        raise PeerReviewError(f"no peer review {review_id}", 404)
    return review


def score_report(
    session: Session,
    *,
    reviewer: User,
    prior: Study,
    score: object,
    comment: object,
    context: Study | None,
    now: datetime.datetime,
) -> PeerReview:
    """Score `prior`'s final report: an assigned review, or a colleague's prior of `context`."""
    parsed = parse_score(score)
    text = clean_text(comment, MAX_COMMENT_LENGTH, "the comment")
    report = session.scalar(select(Report).where(Report.study_id == prior.id))
    signer_id = find_signer_id(session, report) if report is not None else None
    review = find_review(session, report.id, reviewer.id) if report is not None else None
    check_may_score(
        reviewer_id=reviewer.id,
        reviewer_is_radiologist=reviewer.role == Role.RADIOLOGIST,
        report_is_final=report is not None and report.status == ReportStatus.FINAL,
        reported_by_id=signer_id,
        already_scored=review is not None and bool(review.score),
    )
    assert report is not None and signer_id is not None  # check_may_score refused otherwise
    if review is None:
        colleague_priors = find_colleague_priors(session, context, reviewer) if context else []
        if not any(item.report.id == report.id for item in colleague_priors):
            raise PeerReviewError(
                "score a prior of the study you are reading, or a review assigned to you", 403
            )
        review = PeerReview(
            report_id=report.id,
            study_id=prior.id,
            reviewee_id=signer_id,
            reviewer_id=reviewer.id,
            modality=prior.modality,
            source=ReviewSource.READING,
            context_study_id=context.id if context else None,
        )
        session.add(review)
    review.score, review.comment, review.scored_at = parsed.value, text, now
    if needs_discussion(parsed):
        review.discussion = DiscussionState.OPEN
    session.flush()
    return review


def month_bounds(period: str) -> tuple[datetime.datetime, datetime.datetime]:
    year, month = (int(part) for part in parse_period(period).split("-"))
    start = datetime.datetime(year, month, 1, tzinfo=datetime.UTC)
    days = calendar.monthrange(year, month)[1]
    return start, start + datetime.timedelta(days=days)


def list_final_reports_by_signer(session: Session, period: str) -> dict[int, list[int]]:
    """Report ids signed final in the month (UTC), per signing radiologist."""
    start, end = month_bounds(period)
    signers = final_signers()
    rows = session.execute(
        select(signers.c.signer_id, signers.c.report_id)
        .join(Report, Report.id == signers.c.report_id)
        .join(Study, Study.id == Report.study_id)
        .join(User, User.id == signers.c.signer_id)
        .where(
            signers.c.signed_at >= start,
            signers.c.signed_at < end,
            Study.status.in_(REPORTED),
            User.role == Role.RADIOLOGIST,
        )
    ).all()
    grouped: dict[int, list[int]] = defaultdict(list)
    for signer_id, report_id in rows:
        grouped[signer_id].append(report_id)
    return dict(grouped)


def assign_random_sample(
    session: Session,
    *,
    period: str,
    per_radiologist: int,
    seed: str,
    actor: User,
    now: datetime.datetime,
) -> list[PeerReview]:
    """Draw the month's sample and record the new assignments (pairs that exist are kept)."""
    reports = list_final_reports_by_signer(session, period)
    reviewers = [user.id for user in list_radiologists(session)]
    created = []
    for assignment in draw_sample(reports, reviewers, per_radiologist, seed):
        if find_review(session, assignment.report_id, assignment.reviewer_id) is not None:
            continue
        report = session.get(Report, assignment.report_id)
        created.append(
            add_assignment(
                session, report, assignment.reviewee_id, assignment.reviewer_id, actor, now
            )
        )
        created[-1].period, created[-1].seed = period, seed
    session.flush()
    return created


def assign_chosen_study(
    session: Session, *, study: Study, reviewer_email: str, actor: User, now: datetime.datetime
) -> PeerReview:
    """An admin gives one study's final report to one radiologist to review."""
    reviewer = session.scalar(select(User).where(User.email == reviewer_email.strip().lower()))
    if reviewer is None or not reviewer.active or reviewer.role != Role.RADIOLOGIST:
        raise PeerReviewError(f"{reviewer_email!r} is not an active radiologist", 422)
    report = session.scalar(select(Report).where(Report.study_id == study.id))
    signer_id = find_signer_id(session, report) if report is not None else None
    check_may_score(
        reviewer_id=reviewer.id,
        reviewer_is_radiologist=True,
        report_is_final=report is not None and report.status == ReportStatus.FINAL,
        reported_by_id=signer_id,
        already_scored=False,
    )
    assert report is not None and signer_id is not None
    if find_review(session, report.id, reviewer.id) is not None:
        raise PeerReviewError("this radiologist already has this report to review", 409)
    review = add_assignment(session, report, signer_id, reviewer.id, actor, now)
    session.flush()
    return review


def add_assignment(
    session: Session,
    report: Report,
    reviewee_id: int,
    reviewer_id: int,
    actor: User,
    now: datetime.datetime,
) -> PeerReview:
    study = session.get(Study, report.study_id)
    review = PeerReview(
        report_id=report.id,
        study_id=report.study_id,
        reviewee_id=reviewee_id,
        reviewer_id=reviewer_id,
        modality=study.modality if study else "",
        source=ReviewSource.ASSIGNED,
        assigned_by=actor.email,
        assigned_at=now,
    )
    session.add(review)
    return review


def list_reviews(
    session: Session,
    *,
    reviewer_id: int | None = None,
    reviewee_id: int | None = None,
    discussion: str | None = None,
    scored: bool | None = None,
    limit: int = 500,
) -> list[PeerReview]:
    query = select(PeerReview).order_by(PeerReview.id.desc()).limit(limit)
    if reviewer_id is not None:
        query = query.where(PeerReview.reviewer_id == reviewer_id)
    if reviewee_id is not None:
        query = query.where(PeerReview.reviewee_id == reviewee_id)
    if discussion is not None:
        query = query.where(PeerReview.discussion == discussion)
    if scored is True:
        query = query.where(PeerReview.score != "")
    if scored is False:
        query = query.where(PeerReview.score == "")
    return list(session.scalars(query))


def record_outcome(
    session: Session,
    review_id: int,
    *,
    outcome: object,
    revised_score: object,
    note: object,
    actor: User,
    now: datetime.datetime,
) -> PeerReview:
    """The department's decision on a 3b/4b score; the item leaves the queue."""
    review = get_review(session, review_id)
    if review.discussion != DiscussionState.OPEN:
        raise PeerReviewError("this review is not waiting for a discussion", 409)
    decided, score, text = check_outcome(outcome, revised_score, note)
    review.outcome, review.outcome_score, review.outcome_note = decided.value, score, text
    review.outcome_by, review.outcome_at = actor.email, now
    review.discussion = DiscussionState.CLOSED
    session.flush()
    return review


@dataclass
class ReviewFigures:
    """Counts per score of one group (a radiologist, a modality), and its discrepancy rate."""

    group: str
    scores: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.scores.values())

    @property
    def rate(self) -> float:
        return discrepancy_rate(self.scores)

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "reviews": self.total,
            "scores": {score.value: self.scores.get(score.value, 0) for score in Score},
            "discrepancy_rate": round(self.rate, 4),
        }


@dataclass(frozen=True)
class ReviewSummary:
    by_radiologist: list[ReviewFigures]
    by_modality: list[ReviewFigures]
    open_discussions: int


def summarize_reviews(
    session: Session, start: datetime.datetime | None = None, end: datetime.datetime | None = None
) -> ReviewSummary:
    """Scored reviews per reviewed radiologist and per modality: counts only, no text."""
    reviewee = aliased(User)
    filters = [PeerReview.score != ""]
    if start is not None:
        filters.append(PeerReview.scored_at >= start)
    if end is not None:
        filters.append(PeerReview.scored_at < end)

    def figures(column) -> list[ReviewFigures]:
        rows = session.execute(
            select(column, PeerReview.score, func.count())
            .join(reviewee, reviewee.id == PeerReview.reviewee_id)
            .where(and_(*filters))
            .group_by(column, PeerReview.score)
        ).all()
        grouped: dict[str, ReviewFigures] = {}
        for group, score, count in rows:
            grouped.setdefault(group or "", ReviewFigures(group or "")).scores[score] = count
        return [grouped[key] for key in sorted(grouped)]

    open_count = session.scalar(
        select(func.count())
        .select_from(PeerReview)
        .where(PeerReview.discussion == DiscussionState.OPEN)
    )
    return ReviewSummary(
        by_radiologist=figures(reviewee.email),
        by_modality=figures(PeerReview.modality),
        open_discussions=open_count or 0,
    )
