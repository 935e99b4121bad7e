"""Critical results: findings that cannot wait, and the proof that someone who can act got them.

Following the ACR practice parameter on communicating diagnostic imaging findings: the
radiologist flags a signed report as critical with a category, each category has a time
limit (settings), the referring physician acknowledges receipt, telephone communications
are documented (who, when, read-back), and a result nobody acknowledged in time is
escalated. Pure rules here; storage applies them, the portal and the escalation flow ask.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum


class CriticalCategory(StrEnum):
    IMMEDIATE = "immediate"  # minutes: an emergency
    URGENT = "urgent"  # hours
    NON_URGENT = "non_urgent"  # days: actionable, not urgent


LABELS = {
    CriticalCategory.IMMEDIATE: "Immediate (minutes)",
    CriticalCategory.URGENT: "Urgent (hours)",
    CriticalCategory.NON_URGENT: "Non-urgent actionable (days)",
}
MAX_RECIPIENT_LENGTH = 128
# A communication may be recorded after the call, not before it happens.
CLOCK_SLACK = datetime.timedelta(minutes=5)
MAX_COMMUNICATION_AGE = datetime.timedelta(days=30)
# The webhook outbox: the first retry after 30 s, doubling, at most every 15 minutes.
FIRST_RETRY = datetime.timedelta(seconds=30)
LONGEST_RETRY = datetime.timedelta(minutes=15)
SIGNATURE_HEADER = "X-PACS-Signature"


class CriticalResultError(Exception):
    """A refused critical-result action; `status` is the HTTP status that fits."""

    status = 422


class CriticalResultConflict(CriticalResultError):
    status = 409


class CriticalResultForbidden(CriticalResultError):
    status = 403


def parse_category(value: object) -> CriticalCategory:
    if not isinstance(value, str) or value not in CriticalCategory.__members__.values():
        choices = ", ".join(c.value for c in CriticalCategory)
        raise CriticalResultError(f"the critical result category is one of {choices}")
    return CriticalCategory(value)


def compute_due_at(
    flagged_at: datetime.datetime, category: CriticalCategory, limits: dict[str, int]
) -> datetime.datetime:
    """When the result must have been acknowledged (limits in minutes, by category)."""
    return flagged_at + datetime.timedelta(minutes=limits[category.value])


def is_overdue(
    due_at: datetime.datetime, now: datetime.datetime, acknowledged_at: datetime.datetime | None
) -> bool:
    return acknowledged_at is None and now >= due_at


@dataclass(frozen=True)
class TelephoneCommunication:
    """A communication by telephone, as the radiologist documents it."""

    recipient: str  # who was told (name, role)
    communicated_at: datetime.datetime  # aware, UTC
    read_back: bool  # the recipient read the finding back
    recorded_by: str  # DICOM PN of the radiologist

    def describe(self) -> str:
        when = self.communicated_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        check = "read-back confirmed" if self.read_back else "read-back NOT confirmed"
        caller = self.recorded_by.replace("^", " ")
        return f"Communicated by telephone to {self.recipient} at {when} by {caller}; {check}."


def check_communication(
    recipient: object, communicated_at: object, read_back: object, now: datetime.datetime
) -> tuple[str, datetime.datetime, bool]:
    """A documented call: someone named, a time that has passed (not long ago), read-back
    said yes or no. Returns the cleaned values."""
    if not isinstance(recipient, str) or not recipient.strip():
        raise CriticalResultError("say who was told (name and role)")
    name = " ".join(recipient.split())
    if len(name) > MAX_RECIPIENT_LENGTH or not name.isprintable():
        raise CriticalResultError(
            f"the recipient is at most {MAX_RECIPIENT_LENGTH} printable characters"
        )
    if not isinstance(communicated_at, datetime.datetime) or communicated_at.tzinfo is None:
        raise CriticalResultError("the time of the call is a date and time with its time zone")
    if communicated_at > now + CLOCK_SLACK:
        raise CriticalResultError("the call cannot be in the future")
    if communicated_at < now - MAX_COMMUNICATION_AGE:
        raise CriticalResultError("the call is more than 30 days old")
    if not isinstance(read_back, bool):
        raise CriticalResultError("read_back is true or false")
    return name, communicated_at.astimezone(datetime.UTC), read_back


def next_retry_delay(attempts: int) -> datetime.timedelta:
    """Wait after the `attempts`-th failed delivery: 30 s, 1 min, 2 min... at most 15 min."""
    return min(FIRST_RETRY * 2 ** min(max(0, attempts - 1), 16), LONGEST_RETRY)


def sign_payload(secret: str, body: bytes) -> str:
    """The webhook body's HMAC-SHA256, so that the receiver knows it came from us."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def describe_flag(category: CriticalCategory, flagged_at: datetime.datetime, by: str) -> str:
    when = flagged_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"Critical result, {LABELS[category]}: flagged by {by.replace('^', ' ')} at {when}."


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear-interpolated percentile (as numpy's default); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
