"""Decide what becomes of an archived study: onto the worklist, or into quarantine."""

from __future__ import annotations

from dataclasses import dataclass

from core.evidence import EvidenceInstance, StudyHeader, read_study_evidence
from core.records import ArchivedStudy, StudyRecord, build_study_record
from core.validation import Finding, Severity, ValidationPolicy, has_errors, validate_study


@dataclass(frozen=True)
class Assessment:
    record: StudyRecord
    findings: tuple[Finding, ...]
    header: StudyHeader | None = None  # what its report SRs repeat; None for an empty study
    evidence: tuple[EvidenceInstance, ...] = ()

    @property
    def quarantined(self) -> bool:
        return has_errors(self.findings)


def assess_study(
    study: ArchivedStudy, policy: ValidationPolicy | None = None, *, released: bool = False
) -> Assessment:
    """Validate and describe the study; `released` (by an admin) turns errors into warnings.

    A study without instances or without a Study Instance UID cannot be listed,
    so those errors stand even for a released study.
    """
    findings = validate_study(
        study.instances, other_patient_ids=study.other_patient_ids, policy=policy
    )
    if released:
        findings = [override_error(finding) for finding in findings]
    header, evidence = read_study_evidence(study.instances) if study.instances else (None, [])
    return Assessment(
        record=build_study_record(study),
        findings=tuple(findings),
        header=header,
        evidence=tuple(evidence),
    )


UNRELEASABLE = frozenset({"EMPTY_STUDY", "MISSING_STUDY_UID", "MULTIPLE_PATIENTS"})


def override_error(finding: Finding) -> Finding:
    if finding.severity is not Severity.ERROR or finding.code in UNRELEASABLE:
        return finding
    return Finding(
        finding.code,
        Severity.WARNING,
        f"{finding.message} (released from quarantine by an admin)",
        finding.instances,
    )
