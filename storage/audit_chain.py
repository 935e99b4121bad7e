"""The audit trail's hash chain: appended under a lock, verified from the first event.

`audit_chain` holds one row: the last link and the number of chained events. Appending
starts with an UPDATE of that row, which takes PostgreSQL's row lock or SQLite's write
lock before the last link is read: two writers can never chain onto the same link.
Whoever edits an event breaks its link; whoever deletes one breaks the next event's link
(or, for the last ones, the head's count and last link).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.audit import CHAIN_START, chain_audit_hash
from storage.database import dialect_insert
from storage.models.accounts import AuditChainHead, AuditEvent

HEAD_ID = 1  # the head's one row


class AuditChainError(RuntimeError):
    """The chain cannot be extended (its head is missing)."""


@dataclass(frozen=True)
class ChainCheck:
    """The verdict of `verify_audit_chain`."""

    events: int
    broken_event_id: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return not self.problem


def audit_fields(event: AuditEvent) -> list[str]:
    """The event's canonical fields, as stored (times as ISO 8601 UTC with microseconds)."""
    at = event.at.astimezone(datetime.UTC).isoformat(timespec="microseconds")
    return [
        at,
        event.user_email,
        event.role,
        event.client_ip,
        event.action,
        event.object_type,
        event.object_id,
        event.study_uid,
        event.outcome,
        event.detail,
    ]


def append_audit_event(session: Session, event: AuditEvent) -> None:
    """Add `event` with its link; the lock on the head is held until the caller commits."""
    previous = take_chain_head(session)
    event.chain_hash = chain_audit_hash(previous, audit_fields(event))
    session.add(event)
    session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(last_hash=event.chain_hash)
    )


def take_chain_head(session: Session) -> str:
    """Lock the head (count one more event) and return the last link."""
    previous = session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(event_count=AuditChainHead.event_count + 1)
        .returning(AuditChainHead.last_hash)
    ).scalar_one_or_none()
    if previous is None:
        # Made with the tables: gone means deleted. Re-making it here would hide which
        # events went with it, so nothing more is written until someone looks.
        raise AuditChainError("the audit trail has lost its chain head: run `pacs audit verify`")
    return previous


def start_audit_chain(session: Session) -> None:
    """Create the head of a new trail, or of one written before events had links (chained
    here, in id order, at upgrade). A trail with links but no head lost it: left as is.

    Two processes starting at once compute the same links; the second head is not inserted.
    """
    if session.get(AuditChainHead, HEAD_ID) is not None:
        return
    linked = select(AuditEvent.id).where(AuditEvent.chain_hash.is_not(None)).limit(1)
    if session.scalar(linked) is not None:
        return
    previous, count = CHAIN_START, 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        event.chain_hash = chain_audit_hash(previous, audit_fields(event))
        previous, count = event.chain_hash, count + 1
    session.execute(
        dialect_insert(session)(AuditChainHead)
        .values(id=HEAD_ID, last_hash=previous, event_count=count)
        .on_conflict_do_nothing(index_elements=[AuditChainHead.id])
    )


def verify_audit_chain(session: Session) -> ChainCheck:
    """Walk the trail in order: each link must cover the previous link and its own fields."""
    previous, count, last_id = CHAIN_START, 0, None
    statement = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=1000)
    for event in session.scalars(statement):
        if event.chain_hash != chain_audit_hash(previous, audit_fields(event)):
            after = f"event {last_id}" if last_id is not None else "the start of the trail"
            return ChainCheck(
                count,
                event.id,
                f"event {event.id} does not match its link: it was changed, or events "
                f"between {after} and it were deleted",
            )
        previous, count, last_id = event.chain_hash, count + 1, event.id
    head = session.get(AuditChainHead, HEAD_ID)
    if head is None:
        return ChainCheck(count, last_id, "the chain's head (table audit_chain) was deleted")
    expected = (head.last_hash, head.event_count)
    if (previous, count) != expected:
        return ChainCheck(
            count,
            last_id,
            f"the trail ends at event {last_id} with {count} events, but the chain's head "
            f"records {expected[1]}: its last events were deleted",
        )
    return ChainCheck(count)
