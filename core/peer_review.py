"""Peer review, RADPEER style: the scores, who may give one, the random sample, the discussion.

A radiologist reading a study may score a prior of the same patient that a colleague
reported (or a report an admin assigned them): 1 agree; 2, 3, 4 a discrepancy that would
not ordinarily be made, should be made most of the time, should be made almost every time,
each with "a" (unlikely to be clinically significant) or "b" (likely). 3b and 4b go to the
department's discussion queue, where an admin records the outcome.

Admins assign reviews at random: per month, a sample of each radiologist's final reports,
drawn with a seed (the same seed, the same draw) and shared among the other radiologists
so that each reviews about as many as the next.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

MAX_COMMENT_LENGTH = 2000
MAX_NOTE_LENGTH = 2000
MAX_SEED_LENGTH = 64
PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class Score(StrEnum):
    AGREE = "1"
    TWO_A = "2a"
    TWO_B = "2b"
    THREE_A = "3a"
    THREE_B = "3b"
    FOUR_A = "4a"
    FOUR_B = "4b"


SCORE_MEANINGS: dict[Score, str] = {
    Score.AGREE: "Concur with interpretation",
    Score.TWO_A: "Discrepancy not ordinarily expected to be made; unlikely clinically significant",
    Score.TWO_B: "Discrepancy not ordinarily expected to be made; likely clinically significant",
    Score.THREE_A: "Discrepancy that should be made most of the time; unlikely significant",
    Score.THREE_B: "Discrepancy that should be made most of the time; likely significant",
    Score.FOUR_A: "Discrepancy that should be made almost every time; unlikely significant",
    Score.FOUR_B: "Discrepancy that should be made almost every time; likely significant",
}
# Scores the department discusses: a significant miss that should have been made.
DISCUSSION_SCORES = frozenset({Score.THREE_B, Score.FOUR_B})


class ReviewSource(StrEnum):
    READING = "reading"  # scored while reading a later study of the patient
    ASSIGNED = "assigned"  # an admin's assignment (random sample or chosen study)


class DiscussionState(StrEnum):
    NONE = ""
    OPEN = "open"
    CLOSED = "closed"


class Outcome(StrEnum):
    """What the department's discussion decided about a 3b/4b score."""

    UPHELD = "upheld"  # the score stands
    REVISED = "revised"  # the department gives another score
    DISMISSED = "dismissed"  # no discrepancy after all


class PeerReviewError(ValueError):
    """A score, assignment or outcome that the rules refuse; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def parse_score(text: object) -> Score:
    """`1`, `2a` ... `4b` (case and spaces ignored); anything else is refused."""
    value = str(text or "").strip().lower()
    try:
        return Score(value)
    except ValueError:
        allowed = ", ".join(score.value for score in Score)
        raise PeerReviewError(f"score {value!r} is not one of {allowed}") from None


def clean_text(text: object, limit: int, what: str) -> str:
    value = str(text or "").strip()
    if len(value) > limit:
        raise PeerReviewError(f"{what} is longer than {limit} characters")
    return value


def check_may_score(
    *,
    reviewer_id: int,
    reviewer_is_radiologist: bool,
    report_is_final: bool,
    reported_by_id: int | None,
    already_scored: bool,
) -> None:
    """The rules of a score: a radiologist, another radiologist's final report, once."""
    if not reviewer_is_radiologist:
        raise PeerReviewError("only radiologists score reports", 403)
    if not report_is_final:
        raise PeerReviewError("only a final report can be scored", 409)
    if reported_by_id is None:
        raise PeerReviewError("the report's radiologist is unknown", 409)
    if reported_by_id == reviewer_id:
        raise PeerReviewError("you cannot score your own report", 403)
    if already_scored:
        raise PeerReviewError("you have already scored this report", 409)


def needs_discussion(score: Score) -> bool:
    return score in DISCUSSION_SCORES


def check_outcome(outcome: object, revised_score: object, note: object) -> tuple[Outcome, str, str]:
    """An outcome, the revised score (for `revised` only) and the note, checked."""
    try:
        decided = Outcome(str(outcome or "").strip().lower())
    except ValueError:
        allowed = ", ".join(item.value for item in Outcome)
        raise PeerReviewError(f"outcome must be one of {allowed}") from None
    score = parse_score(revised_score).value if decided == Outcome.REVISED else ""
    return decided, score, clean_text(note, MAX_NOTE_LENGTH, "the note")


def parse_period(text: object) -> str:
    """A month, `YYYY-MM`."""
    value = str(text or "").strip()
    if not PERIOD.fullmatch(value):
        raise PeerReviewError(f"period {value!r} is not a month written YYYY-MM")
    return value


@dataclass(frozen=True)
class Assignment:
    report_id: int
    reviewee_id: int
    reviewer_id: int


def draw_sample(
    reports_by_radiologist: Mapping[int, Sequence[int]],
    reviewers: Sequence[int],
    per_radiologist: int,
    seed: str,
) -> list[Assignment]:
    """Draw `per_radiologist` reports of each radiologist and give each to a colleague.

    Reproducible: the same inputs and seed give the same assignments, whatever order the
    inputs came in. Fair: every radiologist has the same number of reports drawn (all of
    them when they signed fewer), and each report goes to the reviewer with the fewest
    reviews so far among those who did not write it (ties broken by the seeded shuffle),
    so reviewers' loads differ by at most one whenever that is possible.
    """
    rng = random.Random(seed)
    chosen: list[tuple[int, int]] = []
    for radiologist in sorted(reports_by_radiologist):
        reports = sorted(set(reports_by_radiologist[radiologist]))
        count = min(per_radiologist, len(reports))
        chosen += [(radiologist, report) for report in sorted(rng.sample(reports, count))]
    order = sorted(set(reviewers))
    rng.shuffle(order)
    load = dict.fromkeys(order, 0)
    rng.shuffle(chosen)  # no radiologist's reports always first in line for the same reviewer
    assignments = []
    for radiologist, report in chosen:
        candidates = [reviewer for reviewer in order if reviewer != radiologist]
        if not candidates:
            continue
        reviewer = min(candidates, key=lambda item: load[item])
        load[reviewer] += 1
        assignments.append(Assignment(report, radiologist, reviewer))
    return sorted(assignments, key=lambda item: item.report_id)


def discrepancy_rate(scores: Mapping[str, int]) -> float:
    """Share of scores other than 1 (agree) among all scores."""
    total = sum(scores.values())
    return 0.0 if total == 0 else (total - scores.get(Score.AGREE, 0)) / total


def may_see_review(*, viewer_role: str, viewer_id: int, reviewer_id: int, reviewee_id: int) -> bool:
    """Admins see every review; a radiologist those they wrote and those of their reports."""
    if viewer_role == "admin":
        return True
    return viewer_role == "radiologist" and viewer_id in (reviewer_id, reviewee_id)


def may_see_reviewer(*, viewer_role: str, viewer_id: int, reviewer_id: int, reveal: bool) -> bool:
    """Who scored is for admins (and the reviewer); the reviewed radiologist only when the
    department reveals reviewers (PACS_PEER_REVIEW_REVEAL_REVIEWERS)."""
    return viewer_role == "admin" or viewer_id == reviewer_id or reveal
