"""Validation rules, one by one, on small instances in Orthanc's short tag format."""

from __future__ import annotations

import pytest

from core.validation import Severity, ValidationPolicy, has_errors, validate_study
from tests.support.validation import NOW, POLICY, make_instance


def codes(instances, **kwargs) -> dict[str, Severity]:
    return {f.code: f.severity for f in validate_study(instances, policy=POLICY, **kwargs)}


def test_a_valid_study_has_no_findings() -> None:
    assert validate_study([make_instance(), make_instance()], policy=POLICY) == []


def test_an_empty_study_is_an_error() -> None:
    assert codes([]) == {"EMPTY_STUDY": Severity.ERROR}


@pytest.mark.parametrize(
    ("keyword", "code"),
    [
        ("PATIENT_ID", "MISSING_PATIENT_ID"),
        ("STUDY_INSTANCE_UID", "MISSING_STUDY_UID"),
        ("SERIES_INSTANCE_UID", "MISSING_SERIES_UID"),
        ("SOP_INSTANCE_UID", "MISSING_SOP_INSTANCE_UID"),
        ("SOP_CLASS_UID", "MISSING_SOP_CLASS_UID"),
        ("MODALITY", "MISSING_MODALITY"),
    ],
)
def test_required_attributes(keyword: str, code: str) -> None:
    assert codes([make_instance(**{keyword: None})])[code] is Severity.ERROR
    assert codes([make_instance(**{keyword: "  "})])[code] is Severity.ERROR


@pytest.mark.parametrize(
    "bad_uid",
    ["1.2.03.4", "1.2..3", "1.2.3.", "1.2.abc", "1" + ".1234567890" * 6, "1.2.3 4"],
)
def test_uid_syntax(bad_uid: str) -> None:
    findings = validate_study([make_instance(SERIES_INSTANCE_UID=bad_uid)], policy=POLICY)
    [finding] = [f for f in findings if f.code == "INVALID_UID"]
    assert finding.severity is Severity.ERROR
    assert "SeriesInstanceUID" in finding.message


def test_uid_with_a_zero_component_is_valid() -> None:
    assert "INVALID_UID" not in codes([make_instance(SOP_INSTANCE_UID="1.2.0.3")])


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"STUDY_DATE": "2026-11-20"}, "is not YYYYMMDD"),
        ({"STUDY_DATE": "20261340"}, "is not YYYYMMDD"),
        ({"STUDY_DATE": None}, "missing"),
        ({"STUDY_TIME": "25:00"}, "is not HHMMSS"),
        ({"STUDY_DATE": "20261201"}, "in the future"),
    ],
)
def test_study_date_is_parsable_and_not_in_the_future(changes, fragment: str) -> None:
    [finding] = [
        f
        for f in validate_study([make_instance(**changes)], policy=POLICY)
        if f.code == "INVALID_STUDY_DATE"
    ]
    assert fragment in finding.message


def test_study_date_tomorrow_is_tolerated_for_time_zones() -> None:
    assert codes([make_instance(STUDY_DATE="20261128", STUDY_TIME="0130")]) == {}


def test_modality_must_be_allowed() -> None:
    assert codes([make_instance(MODALITY="XYZ")])["MODALITY_NOT_ALLOWED"] is Severity.ERROR
    policy = ValidationPolicy(allowed_modalities=frozenset({"MR"}), now=lambda: NOW)
    assert [f.code for f in validate_study([make_instance()], policy=policy)] == [
        "MODALITY_NOT_ALLOWED"
    ]


def test_image_without_pixel_data() -> None:
    assert codes([make_instance(PIXEL_DATA=None)])["MISSING_PIXEL_DATA"] is Severity.ERROR


def test_non_image_without_pixel_data_is_fine() -> None:
    report = make_instance(
        PIXEL_DATA=None,
        SOP_CLASS_UID="1.2.840.10008.5.1.4.1.1.88.33",
        MODALITY="SR",
        ROWS=None,
        COLUMNS=None,
    )
    assert codes([report]) == {}


@pytest.mark.parametrize(
    "changes",
    [
        {"ROWS": None},
        {"COLUMNS": "0"},
        {"BITS_ALLOCATED": "12"},
        {"BITS_STORED": "17"},
        {"HIGH_BIT": "15"},
        {"SAMPLES_PER_PIXEL": "2"},
    ],
)
def test_pixel_attributes_must_be_consistent(changes) -> None:
    assert codes([make_instance(**changes)])["INCONSISTENT_PIXEL_ATTRIBUTES"] is Severity.ERROR


def test_unknown_character_set() -> None:
    found = codes([make_instance(SPECIFIC_CHARACTER_SET="ISO_IR 999")])
    assert found["UNKNOWN_CHARACTER_SET"] is Severity.ERROR
    assert codes([make_instance(SPECIFIC_CHARACTER_SET="\\ISO 2022 IR 87")]) == {}


def test_missing_accession_is_only_a_warning() -> None:
    findings = validate_study([make_instance(ACCESSION_NUMBER=None)], policy=POLICY)
    assert [(f.code, f.severity) for f in findings] == [
        ("MISSING_ACCESSION_NUMBER", Severity.WARNING)
    ]
    assert not has_errors(findings)


def test_malformed_birth_date_is_a_warning() -> None:
    assert codes([make_instance(PATIENT_BIRTH_DATE="1960")]) == {
        "INVALID_BIRTH_DATE": Severity.WARNING
    }


def test_two_patients_in_one_study_is_an_error() -> None:
    found = codes([make_instance(), make_instance(PATIENT_ID="P2")])
    assert found["MULTIPLE_PATIENTS"] is Severity.ERROR


def test_same_study_uid_filed_under_another_patient_is_an_error() -> None:
    findings = validate_study([make_instance()], other_patient_ids=["P9"], policy=POLICY)
    [finding] = findings
    assert finding.code == "MULTIPLE_PATIENTS"
    assert "P1, P9" in finding.message


def test_inconsistent_demographics_is_a_warning() -> None:
    found = codes([make_instance(), make_instance(PATIENT_NAME="Muller^J", PATIENT_SEX="F")])
    assert found == {"INCONSISTENT_DEMOGRAPHICS": Severity.WARNING}


def test_findings_are_merged_per_rule_with_instance_counts() -> None:
    instances = [make_instance(PIXEL_DATA=None) for _ in range(3)] + [make_instance()]
    [finding] = validate_study(instances, policy=POLICY)
    assert finding.instances == 3
    assert finding.as_dict()["severity"] == "error"
