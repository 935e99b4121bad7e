"""Turnaround analytics' vocabulary: backlog age buckets, the dimensions and periods a
manager can group by, and the filters every dashboard query takes. No I/O."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

# (label, from minutes, to minutes or None): how long a study has waited for its final report.
AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("< 1 h", 0, 60),
    ("1-4 h", 60, 4 * 60),
    ("4-12 h", 4 * 60, 12 * 60),
    ("12-24 h", 12 * 60, 24 * 60),
    ("1-4 d", 24 * 60, 4 * 24 * 60),
    ("4-7 d", 4 * 24 * 60, 7 * 24 * 60),
    ("> 7 d", 7 * 24 * 60, None),
)

# Dimension name -> the fct_study_turnaround column it groups by.
GROUP_BY_COLUMNS = {
    "modality": "modality",
    "priority": "priority",
    "radiologist": "radiologist_email",
    "institution": "institution",
}
PERIODS = ("day", "week", "month")
# The intervals a turnaround query can measure (fct_study_turnaround columns, in minutes).
METRICS = {
    "received_to_final": "received_to_final_minutes",
    "received_to_opened": "received_to_opened_minutes",
    "received_to_preliminary": "received_to_preliminary_minutes",
    "ordered_to_final": "ordered_to_final_minutes",
    "ordered_to_exam": "ordered_to_exam_minutes",
    "exam_to_final": "exam_to_final_minutes",
}
# The order's intervals (order -> exam start -> exam end -> final), as the order dashboards
# show them side by side: metric -> its label.
ORDER_METRICS = {
    "ordered_to_exam": "order → exam",
    "exam_to_final": "exam → final",
    "ordered_to_final": "order → final",
}


@dataclass(frozen=True)
class TurnaroundFilters:
    """What a manager narrows the dashboards to; empty means everything. Dates are the
    department's local days, inclusive (of finalization for turnaround, of receipt for volume)."""

    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    modality: str = ""
    priority: str = ""
    radiologist: str = ""  # e-mail of the radiologist who signed the final report
    institution: str = ""
