"""The kinds of step in a study's life, as its timeline and turnaround analytics read them
(`study_events.kind`; the warehouse selects by these names: keep them)."""

from __future__ import annotations

import enum


class StudyEventKind(enum.StrEnum):
    RECEIVED = "received"  # first ingested
    ASSIGNED = "assigned"  # to a radiologist (detail: their e-mail)
    RELEASED = "released"  # given back to the worklist
    PRIORITY = "priority"  # changed (detail: old -> new: reason)
    OPENED = "opened"  # a radiologist's first look at the images
    REPORT_STARTED = "report_started"  # the first draft saved
    PRELIMINARY = "preliminary"  # signatures, one event each
    FINAL = "final"
    ADDENDUM = "addendum"
