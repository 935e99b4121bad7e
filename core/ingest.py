"""Decide what becomes of an archived study: onto the worklist, or into quarantine."""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.evidence import EvidenceInstance, StudyHeader, read_study_evidence
from core.identity import (
    IDENTITY_FIELDS,
    IdentityChange,
    RecordedIdentity,
    describe_identity_changes,
    find_identity_changes,
)
from core.records import ArchivedStudy, StudyRecord, build_study_record
from core.validation import Finding, Severity, ValidationPolicy, has_errors, validate_study


@dataclass(frozen=True)
class Assessment:
    record: StudyRecord
    findings: tuple[Finding, ...]
    header: StudyHeader | None = None  # what its report SRs repeat; None for an empty study
    evidence: tuple[EvidenceInstance, ...] = ()
    identity_changes: tuple[IdentityChange, ...] = ()

    @property
    def quarantined(self) -> bool:
        return has_errors(self.findings)


def assess_study(
    study: ArchivedStudy,
    policy: ValidationPolicy | None = None,
    *,
    released: bool = False,
    recorded: RecordedIdentity | None = None,
) -> Assessment:
    """Validate and describe the study; `released` (by an admin) turns errors into warnings.

    A study without instances or without a Study Instance UID cannot be listed,
    so those errors stand even for a released study. `recorded` is the listed study
    with this Study UID, if any: once reported, its identity is kept, and identity
    values it has not seen are an error that a release does not override (the admin
    decides on them, see core/identity.py).
    """
    findings = validate_study(
        study.instances, other_patient_ids=study.other_patient_ids, policy=policy
    )
    if released:
        findings = [override_error(finding) for finding in findings]
    record = build_study_record(study)
    changes: list[IdentityChange] = []
    if recorded is not None and recorded.reported and study.instances:
        changes = find_identity_changes(recorded, study.instances)
        if changes:
            findings.append(describe_identity_changes(changes))
        record = replace(record, **{f.name: recorded.values.get(f.name) for f in IDENTITY_FIELDS})
    header, evidence = read_study_evidence(study.instances) if study.instances else (None, [])
    return Assessment(
        record=record,
        findings=tuple(findings),
        header=header,
        evidence=tuple(evidence),
        identity_changes=tuple(changes),
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
