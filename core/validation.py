"""Validation of a study's instances before it reaches the worklist.

Rules are a table: a code, a severity and a message each. Errors send the study
to quarantine with every reason listed; warnings let it through and are shown
on the worklist. Instance rules look at one instance's DICOM JSON; study rules
at all of them together.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pydicom import uid as dicom_uid
from pydicom.charset import python_encoding

from core import tags as tg
from core.tags import Tags


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One rule broken: `instances` counts how many instances broke it."""

    code: str
    severity: Severity
    message: str
    instances: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Finding:
        """A finding as `as_dict` stored it."""
        return cls(
            str(data["code"]),
            Severity(data["severity"]),
            str(data["message"]),
            int(data.get("instances", 1)),  # type: ignore[call-overload]
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "instances": self.instances,
        }


@dataclass(frozen=True)
class ValidationPolicy:
    """What a department configures: allowed modalities and the clock to compare dates to."""

    allowed_modalities: frozenset[str] = frozenset(
        {"CR", "CT", "DX", "MG", "MR", "NM", "OT", "PT", "RF", "US", "XA", "IO", "PX"}
        | {"SR", "PR", "KO", "DOC", "SEG", "REG", "RTSTRUCT", "SC"}
    )
    now: Callable[[], datetime.datetime] = field(
        default=lambda: datetime.datetime.now(datetime.UTC)
    )


@dataclass(frozen=True)
class InstanceRule:
    code: str
    severity: Severity
    message: str
    check: Callable[[Tags, ValidationPolicy], str | None]  # detail when broken


@dataclass(frozen=True)
class StudyRule:
    code: str
    severity: Severity
    message: str
    check: Callable[[Sequence[Tags], Sequence[str]], str | None]


UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

IMAGE_SOP_CLASSES = frozenset(
    {
        dicom_uid.ComputedRadiographyImageStorage,
        dicom_uid.DigitalXRayImageStorageForPresentation,
        dicom_uid.DigitalXRayImageStorageForProcessing,
        dicom_uid.DigitalMammographyXRayImageStorageForPresentation,
        dicom_uid.DigitalMammographyXRayImageStorageForProcessing,
        dicom_uid.CTImageStorage,
        dicom_uid.EnhancedCTImageStorage,
        dicom_uid.MRImageStorage,
        dicom_uid.EnhancedMRImageStorage,
        dicom_uid.UltrasoundImageStorage,
        dicom_uid.UltrasoundMultiFrameImageStorage,
        dicom_uid.SecondaryCaptureImageStorage,
        dicom_uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        dicom_uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        dicom_uid.MultiFrameTrueColorSecondaryCaptureImageStorage,
        dicom_uid.XRayAngiographicImageStorage,
        dicom_uid.XRayRadiofluoroscopicImageStorage,
        dicom_uid.NuclearMedicineImageStorage,
        dicom_uid.PositronEmissionTomographyImageStorage,
        dicom_uid.EnhancedPETImageStorage,
        dicom_uid.BreastTomosynthesisImageStorage,
        dicom_uid.VLPhotographicImageStorage,
    }
)


def check_required(tag: str) -> Callable[[Tags, ValidationPolicy], str | None]:
    def check(instance: Tags, policy: ValidationPolicy) -> str | None:
        return None if tg.get_text(instance, tag) else "missing or empty"

    return check


def describe_uid_problem(value: str) -> str | None:
    """Why `value` is not a valid UID (PS3.5 9.1), or None when it is."""
    if len(value) > 64:
        return f"{value[:20]}... is {len(value)} characters (at most 64)"
    if not UID_PATTERN.match(value):
        return f"{value!r} is not digits separated by dots without leading zeros"
    return None


def check_uids(instance: Tags, policy: ValidationPolicy) -> str | None:
    problems = []
    for name, tag in (
        ("StudyInstanceUID", tg.STUDY_INSTANCE_UID),
        ("SeriesInstanceUID", tg.SERIES_INSTANCE_UID),
        ("SOPInstanceUID", tg.SOP_INSTANCE_UID),
        ("SOPClassUID", tg.SOP_CLASS_UID),
    ):
        value = tg.get_text(instance, tag)
        problem = describe_uid_problem(value) if value else None
        if problem:
            problems.append(f"{name} {problem}")
    return "; ".join(problems) or None


def check_study_date(instance: Tags, policy: ValidationPolicy) -> str | None:
    date_text = tg.get_text(instance, tg.STUDY_DATE)
    time_text = tg.get_text(instance, tg.STUDY_TIME)
    if not date_text:
        return "StudyDate is missing"
    date = tg.parse_date(date_text)
    if date is None:
        return f"StudyDate {date_text!r} is not YYYYMMDD"
    if time_text and tg.parse_time(time_text) is None:
        return f"StudyTime {time_text!r} is not HHMMSS"
    # Compared by calendar day, a day's grace for modalities in time zones ahead of ours.
    if date > policy.now().date() + datetime.timedelta(days=1):
        return f"StudyDate {date.isoformat()} is in the future"
    return None


def check_modality(instance: Tags, policy: ValidationPolicy) -> str | None:
    modality = tg.get_text(instance, tg.MODALITY)
    if modality and modality not in policy.allowed_modalities:
        return f"{modality} is not among the allowed modalities"
    return None


def check_pixel_data(instance: Tags, policy: ValidationPolicy) -> str | None:
    if tg.get_text(instance, tg.SOP_CLASS_UID) not in IMAGE_SOP_CLASSES:
        return None
    if not any(
        tg.has_element(instance, tag)
        for tag in (tg.PIXEL_DATA, tg.FLOAT_PIXEL_DATA, tg.DOUBLE_PIXEL_DATA)
    ):
        return "an image without pixel data"
    return None


def check_pixel_attributes(instance: Tags, policy: ValidationPolicy) -> str | None:
    if tg.get_text(instance, tg.SOP_CLASS_UID) not in IMAGE_SOP_CLASSES:
        return None
    rows, columns = tg.get_int(instance, tg.ROWS), tg.get_int(instance, tg.COLUMNS)
    allocated, stored = (
        tg.get_int(instance, tg.BITS_ALLOCATED),
        tg.get_int(instance, tg.BITS_STORED),
    )
    high_bit, samples = (
        tg.get_int(instance, tg.HIGH_BIT),
        tg.get_int(instance, tg.SAMPLES_PER_PIXEL),
    )
    if not rows or not columns:
        return f"Rows/Columns missing or zero ({rows}x{columns})"
    if allocated not in (1, 8, 16, 32, 64):
        return f"BitsAllocated {allocated} is not 1, 8, 16, 32 or 64"
    if stored is None or not 1 <= stored <= allocated:
        return f"BitsStored {stored} does not fit BitsAllocated {allocated}"
    if high_bit != stored - 1:
        return f"HighBit {high_bit} is not BitsStored - 1 ({stored - 1})"
    if samples not in (1, 3, 4):
        return f"SamplesPerPixel {samples} is not 1, 3 or 4"
    return None


def check_character_set(instance: Tags, policy: ValidationPolicy) -> str | None:
    terms = tg.get_values(instance, tg.SPECIFIC_CHARACTER_SET)
    unknown = [term for term in terms if term and term not in python_encoding]
    return f"unknown term(s) {', '.join(unknown)}" if unknown else None


def check_birth_date(instance: Tags, policy: ValidationPolicy) -> str | None:
    text = tg.get_text(instance, tg.PATIENT_BIRTH_DATE)
    if text and tg.parse_date(text) is None:
        return f"PatientBirthDate {text!r} is not YYYYMMDD"
    return None


INSTANCE_RULES: tuple[InstanceRule, ...] = (
    InstanceRule(
        "MISSING_PATIENT_ID",
        Severity.ERROR,
        "Patient ID is required",
        check_required(tg.PATIENT_ID),
    ),
    InstanceRule(
        "MISSING_STUDY_UID",
        Severity.ERROR,
        "Study Instance UID is required",
        check_required(tg.STUDY_INSTANCE_UID),
    ),
    InstanceRule(
        "MISSING_SERIES_UID",
        Severity.ERROR,
        "Series Instance UID is required",
        check_required(tg.SERIES_INSTANCE_UID),
    ),
    InstanceRule(
        "MISSING_SOP_INSTANCE_UID",
        Severity.ERROR,
        "SOP Instance UID is required",
        check_required(tg.SOP_INSTANCE_UID),
    ),
    InstanceRule(
        "MISSING_SOP_CLASS_UID",
        Severity.ERROR,
        "SOP Class UID is required",
        check_required(tg.SOP_CLASS_UID),
    ),
    InstanceRule(
        "MISSING_MODALITY", Severity.ERROR, "Modality is required", check_required(tg.MODALITY)
    ),
    InstanceRule("INVALID_UID", Severity.ERROR, "UIDs must follow DICOM syntax", check_uids),
    InstanceRule(
        "INVALID_STUDY_DATE",
        Severity.ERROR,
        "Study date/time must be valid and not in the future",
        check_study_date,
    ),
    InstanceRule(
        "MODALITY_NOT_ALLOWED",
        Severity.ERROR,
        "Modality is not accepted by this department",
        check_modality,
    ),
    InstanceRule(
        "MISSING_PIXEL_DATA",
        Severity.ERROR,
        "Image instances must carry pixel data",
        check_pixel_data,
    ),
    InstanceRule(
        "INCONSISTENT_PIXEL_ATTRIBUTES",
        Severity.ERROR,
        "Image pixel attributes must be consistent",
        check_pixel_attributes,
    ),
    InstanceRule(
        "UNKNOWN_CHARACTER_SET",
        Severity.ERROR,
        "Specific Character Set must be decodable",
        check_character_set,
    ),
    InstanceRule(
        "INVALID_BIRTH_DATE", Severity.WARNING, "Patient birth date is malformed", check_birth_date
    ),
    InstanceRule(
        "MISSING_ACCESSION_NUMBER",
        Severity.WARNING,
        "Accession number is missing",
        check_required(tg.ACCESSION_NUMBER),
    ),
)


def check_one_patient(instances: Sequence[Tags], other_patient_ids: Sequence[str]) -> str | None:
    ids = {tg.get_text(instance, tg.PATIENT_ID) for instance in instances} | set(other_patient_ids)
    ids.discard("")
    return f"Patient IDs {', '.join(sorted(ids))}" if len(ids) > 1 else None


def check_consistent_demographics(
    instances: Sequence[Tags], other_patient_ids: Sequence[str]
) -> str | None:
    differing = [
        name
        for name, tag in (
            ("name", tg.PATIENT_NAME),
            ("birth date", tg.PATIENT_BIRTH_DATE),
            ("sex", tg.PATIENT_SEX),
        )
        if len({tg.get_text(instance, tag) for instance in instances}) > 1
    ]
    return f"patient {', '.join(differing)} differ between instances" if differing else None


STUDY_RULES: tuple[StudyRule, ...] = (
    StudyRule(
        "MULTIPLE_PATIENTS", Severity.ERROR, "A study must belong to one patient", check_one_patient
    ),
    StudyRule(
        "INCONSISTENT_DEMOGRAPHICS",
        Severity.WARNING,
        "Patient demographics should agree across the study",
        check_consistent_demographics,
    ),
)


def validate_study(
    instances: Sequence[Tags],
    *,
    other_patient_ids: Sequence[str] = (),
    policy: ValidationPolicy | None = None,
) -> list[Finding]:
    """Every rule broken by the study, instance findings merged per rule.

    `other_patient_ids` are Patient IDs under which the archive holds the same
    StudyInstanceUID (the archive files those as separate studies).
    """
    if not instances:
        return [Finding("EMPTY_STUDY", Severity.ERROR, "The study has no instances")]
    return check_instances(instances, policy or ValidationPolicy()) + check_study(
        instances, other_patient_ids
    )


def validate_added_instances(
    instances: Sequence[Tags],
    recorded: Tags,
    *,
    other_patient_ids: Sequence[str] = (),
    policy: ValidationPolicy | None = None,
) -> list[Finding]:
    """The rules broken by instances added to a recorded study (a late series): instance
    rules on them, study rules on them together with `recorded`, the patient and study
    values the study was recorded with, as DICOM text."""
    if not instances:
        return []
    return check_instances(instances, policy or ValidationPolicy()) + check_study(
        [recorded, *instances], other_patient_ids
    )


def check_instances(instances: Sequence[Tags], policy: ValidationPolicy) -> list[Finding]:
    findings = []
    for rule in INSTANCE_RULES:
        details = [detail for instance in instances if (detail := rule.check(instance, policy))]
        if details:
            example = details[0] if len(set(details)) == 1 else f"{details[0]} (and others)"
            findings.append(
                Finding(rule.code, rule.severity, f"{rule.message}: {example}", len(details))
            )
    return findings


def check_study(instances: Sequence[Tags], other_patient_ids: Sequence[str]) -> list[Finding]:
    findings = []
    for rule in STUDY_RULES:
        detail = rule.check(instances, other_patient_ids)
        if detail:
            findings.append(
                Finding(rule.code, rule.severity, f"{rule.message}: {detail}", len(instances))
            )
    return findings


def merge_findings(recorded: Sequence[Finding], added: Sequence[Finding]) -> list[Finding]:
    """A recorded study's findings with those of its added instances: one per rule (an
    error if either is), the recorded message kept, the instances counted together."""
    merged = {finding.code: finding for finding in recorded}
    for finding in added:
        known = merged.get(finding.code)
        if known is not None:
            severity = min(known.severity, finding.severity, key=list(Severity).index)
            finding = Finding(
                known.code, severity, known.message, known.instances + finding.instances
            )
        merged[finding.code] = finding
    return list(merged.values())


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(finding.severity is Severity.ERROR for finding in findings)
