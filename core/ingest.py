"""Decide what becomes of an archived study: onto the worklist, or into quarantine."""

from __future__ import annotations

from dataclasses import dataclass, replace

from core import tags as tg
from core.evidence import (
    EvidenceInstance,
    StudyHeader,
    is_evidence,
    read_evidence_instance,
    read_study_evidence,
    sort_evidence,
)
from core.identity import (
    IDENTITY_FIELDS,
    IdentityChange,
    RecordedIdentity,
    describe_identity_changes,
    find_identity_changes,
)
from core.records import ArchivedStudy, StudyRecord, add_series_records, build_study_record
from core.tags import Tags
from core.validation import (
    Finding,
    Severity,
    ValidationPolicy,
    has_errors,
    merge_findings,
    validate_added_instances,
    validate_study,
)


@dataclass(frozen=True)
class Assessment:
    record: StudyRecord
    findings: tuple[Finding, ...]
    header: StudyHeader | None = None  # what its report SRs repeat; None for an empty study
    evidence: tuple[EvidenceInstance, ...] = ()
    identity_changes: tuple[IdentityChange, ...] = ()
    evidence_complete: bool = True  # False: `evidence` is what the added series bring

    @property
    def quarantined(self) -> bool:
        return has_errors(self.findings)


@dataclass(frozen=True)
class RecordedStudy:
    """A listed study as ingestion recorded it: what the series read later are added to."""

    record: StudyRecord
    findings: tuple[Finding, ...]
    header: StudyHeader


def assess_study(
    study: ArchivedStudy,
    policy: ValidationPolicy | None = None,
    *,
    released: bool = False,
    recorded: RecordedIdentity | None = None,
    base: RecordedStudy | None = None,
) -> Assessment:
    """Validate and describe the study; `released` (by an admin) turns errors into warnings.

    A study without instances or without a Study Instance UID cannot be listed,
    so those errors stand even for a released study. `recorded` is the listed study
    with this Study UID, if any: once reported, its identity is kept, and identity
    values it has not seen are an error that a release does not override (the admin
    decides on them, see core/identity.py). `base` is the study as recorded when only
    its new series were read (`study.kept_series`): they are added to it.
    """
    if base is not None:
        return assess_added_series(study, base, policy, recorded=recorded)
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


def assess_added_series(
    study: ArchivedStudy,
    base: RecordedStudy,
    policy: ValidationPolicy | None,
    *,
    recorded: RecordedIdentity | None,
) -> Assessment:
    """The recorded study with the series just read added: their instances validated (with
    the recorded patient for the study rules), their findings merged with the recorded
    ones, their evidence added; what was recorded is not read again."""
    findings = merge_findings(
        base.findings,
        validate_added_instances(
            study.instances,
            header_tags(base.header),
            other_patient_ids=study.other_patient_ids,
            policy=policy,
        ),
    )
    changes: list[IdentityChange] = []
    if recorded is not None and recorded.reported and study.instances:
        changes = find_identity_changes(recorded, study.instances)
        if changes:
            findings.append(describe_identity_changes(changes))
    evidence = sort_evidence(read_evidence_instance(i) for i in study.instances if is_evidence(i))
    return Assessment(
        record=add_series_records(base.record, study),
        findings=tuple(findings),
        header=base.header,
        evidence=tuple(evidence),
        identity_changes=tuple(changes),
        evidence_complete=False,
    )


def header_tags(header: StudyHeader) -> Tags:
    """The recorded header as an instance's tags: what the study rules compare added
    instances with (the patient as the archive's DICOM gave it, not as an order did)."""
    return {
        tg.STUDY_INSTANCE_UID: header.study_instance_uid,
        tg.PATIENT_ID: header.patient_id,
        tg.PATIENT_NAME: header.patient_name,
        tg.PATIENT_BIRTH_DATE: header.patient_birth_date,
        tg.PATIENT_SEX: header.patient_sex,
    }


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
