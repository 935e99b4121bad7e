"""Quarantine: the states of a study that validation held back, and the refusal of an
action on an entry that is not open."""

from __future__ import annotations

import enum


class QuarantineState(enum.StrEnum):
    OPEN = "open"  # held back, waiting for an admin
    RELEASED = "released"  # an admin released it: ingested with its errors as warnings
    CLEARED = "cleared"  # passed validation on a later ingest
    DELETED = "deleted"  # deleted from the archive (by an admin, or gone from it)


# Entries whose study the archive still holds and the database must account for.
UNRESOLVED_STATES = (QuarantineState.OPEN, QuarantineState.RELEASED)


class QuarantineError(LookupError):
    """No open quarantine entry answers to that name."""

    status = 404


class IdentityDecisionError(QuarantineError):
    """The release of a reported study whose identity changed lacks a (possible) decision."""

    status = 409
