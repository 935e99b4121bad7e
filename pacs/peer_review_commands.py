"""`pacs peer-review assign`: an admin's monthly random sample, from a script or cron."""

from __future__ import annotations

import datetime
import secrets
from typing import TextIO

from config.settings import Settings
from core.accounts import Role
from core.peer_review import MAX_SEED_LENGTH, PeerReviewError, parse_period
from pacs.ingest_commands import CommandError
from storage.accounts import find_user, write_audit
from storage.database import open_session
from storage.peer_review import assign_random_sample


def assign_sample(
    settings: Settings,
    *,
    month: str,
    by: str,
    seed: str | None,
    per_radiologist: int | None,
    out: TextIO,
) -> int:
    """Draw the month's sample as admin `by` (audited as theirs); prints the seed used."""
    count = settings.peer_review_sample if per_radiologist is None else per_radiologist
    used_seed = seed if seed else secrets.token_hex(8)
    if not 0 <= count <= 100:
        raise CommandError("--per-radiologist must be between 0 and 100")
    if len(used_seed) > MAX_SEED_LENGTH:
        raise CommandError(f"--seed is longer than {MAX_SEED_LENGTH} characters")
    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        actor = find_user(session, by)
        if actor is None or not actor.active or actor.role != Role.ADMIN:
            raise CommandError(f"--by {by!r} is not an active admin")
        try:
            created = assign_random_sample(
                session,
                period=parse_period(month),
                per_radiologist=count,
                seed=used_seed,
                actor=actor,
                now=now,
            )
        except PeerReviewError as error:
            raise CommandError(str(error)) from None
        write_audit(
            session,
            action="peer_review_assign",
            outcome="success",
            now=now,
            user=actor,
            object_type="peer_review_sample",
            object_id=month,
            detail=f"seed={used_seed} per_radiologist={count} new={len(created)} (pacs command)",
        )
        reviewers = [(review.report_id, review.reviewer.email) for review in created]
    for report_id, reviewer in reviewers:
        out.write(f"report {report_id}\t{reviewer}\n")
    out.write(f"{len(reviewers)} reviews assigned for {month} (seed {used_seed})\n")
    return 0
