"""What goes with a research export besides the images: the manifest and the report.

Both name only pseudonyms and the export's own UIDs, never a source identifier, so they
travel with the data. The report says which profile and options were applied, and which
instances were left out and why (excluded by policy, or withheld by the verification).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.csv_cells import SafeCsvWriter
from core.deidentify import OPTION_COLUMNS, format_profile, parse_profile

MANIFEST_COLUMNS = ("pseudonym", "study_uid", "series_uid", "modality", "instances")
REPORT_POLICY = (
    "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, driven by the "
    "standard's table (innolitics/dicom-standard). Combined actions resolved to the least "
    "destructive valid choice (X/Z->Z, X/D, Z/D, X/Z/D->D, X/Z/U*->U). Private attributes "
    "removed (except the safe list with the safe-private option); overlay and curve groups "
    "removed. UIDs replaced by 2.25 UIDs keyed to this export, consistently, so references "
    "resolve. Instances with burned-in annotation (YES, or ultrasound/secondary capture "
    "without NO) excluded. Structured reports included only with the structured-content "
    "option, their text cleaned. Every instance scanned for its source's identifiers after "
    "de-identification; any hit withholds it."
)


@dataclass(frozen=True)
class InstanceSummary:
    """One instance's outcome, without its data or its source identity."""

    status: str
    reason: str
    pseudonym: str
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str

    @property
    def path(self) -> str:
        """Where it sits in the export: Patient/Study/Series/Instance.dcm."""
        return f"{self.pseudonym}/{self.study_uid}/{self.series_uid}/{self.sop_uid}.dcm"


def build_manifest(summaries: Iterable[InstanceSummary]) -> str:
    """CSV of exported series: pseudonymous patient, study, series, modality, count."""
    counts = Counter(
        (s.pseudonym, s.study_uid, s.series_uid, s.modality)
        for s in summaries
        if s.status == "exported"
    )
    out = io.StringIO()
    writer = SafeCsvWriter(out, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for key, count in sorted(counts.items()):
        writer.writerow([*key, count])
    return out.getvalue()


def build_report(profile: str, summaries: list[InstanceSummary]) -> dict[str, Any]:
    """The de-identification report (JSON): method, options, counts, what was left out."""
    options = parse_profile(profile)
    counts = Counter(s.status for s in summaries)
    return {
        "profile": format_profile(options),
        "method": REPORT_POLICY,
        "options": [OPTION_COLUMNS[option][2] for option in sorted(options)],
        "patients": len({s.pseudonym for s in summaries if s.status == "exported"}),
        "studies": len({s.study_uid for s in summaries if s.status == "exported"}),
        "instances": {
            "total": len(summaries),
            "exported": counts["exported"],
            "excluded": counts["excluded"],
            "withheld": counts["withheld"],
        },
        "left_out": [
            {
                "status": s.status,
                "reason": s.reason,
                "pseudonym": s.pseudonym,
                "study_uid": s.study_uid,
                "series_uid": s.series_uid,
                "sop_uid": s.sop_uid,
                "modality": s.modality,
            }
            for s in summaries
            if s.status != "exported"
        ],
    }
