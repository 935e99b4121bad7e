"""SR documents built from signed reports: valid for dciodvfy, faithful, deterministic."""

from __future__ import annotations

import datetime
import io

import pydicom
import pytest

from core.evidence import EvidenceInstance, StudyHeader, read_study_evidence
from core.reports import document_uids
from core.sr import (
    Addendum,
    DocumentReference,
    SignedReport,
    build_report_sr,
    encode_part10,
    person_name,
)
from tests.support.reports import (
    dciodvfy_errors,
    evidence_uids,
    observer_name,
    predecessor_uids,
    section_texts,
)
from tests.support.studies import clone_study

pytestmark = pytest.mark.requires("dciodvfy")

SIGNED_AT = datetime.datetime(2026, 11, 27, 14, 30, 5, 123456, tzinfo=datetime.UTC)
SECTIONS = {
    "clinical_information": "Toux depuis 3 semaines; fièvre.",
    "comparison": "",
    "technique": "PA and lateral.",
    "findings": "Lungs clear.\nНет плеврального выпота. 心影正常。",  # noqa: RUF001
    "impression": "No acute abnormality — normal study.",
}


@pytest.fixture(scope="module")
def study() -> tuple[StudyHeader, list[EvidenceInstance]]:
    datasets = clone_study("CR", PatientName="Ødegård^Ærlig", ReferringPhysicianName="Łukasz^Ó")
    first = datasets[0]
    header = StudyHeader(
        study_instance_uid=first.StudyInstanceUID,
        patient_name=str(first.PatientName),
        patient_id=first.PatientID,
        patient_birth_date=first.get("PatientBirthDate", ""),
        patient_sex=first.get("PatientSex", ""),
        study_date=first.StudyDate,
        study_time=first.StudyTime,
        accession_number=first.get("AccessionNumber", ""),
        study_id="42",
        referring_physician=str(first.ReferringPhysicianName),
        institution="Hôpital Saint-Éloi",
    )
    evidence = [
        EvidenceInstance(ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.SOPClassUID) for ds in datasets
    ]
    return header, evidence


def make_report(kind: str, sequence: int, **changes) -> SignedReport:
    series_uid, sop_uid = document_uids("test-report", sequence)
    values = dict(
        kind=kind,
        sections=SECTIONS,
        author_name="Nakamura^Yūko",
        signed_at=SIGNED_AT,
        series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
        instance_number=sequence,
    )
    values.update(changes)
    return SignedReport(**values)


def read_back(part10: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(part10))


def test_a_preliminary_report_is_partial_and_unverified(study) -> None:
    header, evidence = study
    part10 = encode_part10(build_report_sr(make_report("preliminary", 1), header, evidence))
    assert dciodvfy_errors(part10) == []
    sr = read_back(part10)
    assert sr.CompletionFlag == "PARTIAL"
    assert sr.VerificationFlag == "UNVERIFIED"
    assert sr.PreliminaryFlag == "PRELIMINARY"
    assert "VerifyingObserverSequence" not in sr
    assert "PredecessorDocumentsSequence" not in sr


def test_a_final_report_is_complete_verified_and_says_what_was_signed(study) -> None:
    header, evidence = study
    preliminary = make_report("preliminary", 1)
    report = make_report(
        "final",
        2,
        predecessor=DocumentReference(
            preliminary.series_instance_uid, preliminary.sop_instance_uid
        ),
    )
    part10 = encode_part10(build_report_sr(report, header, evidence))
    assert dciodvfy_errors(part10) == []
    sr = read_back(part10)
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    assert sr.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert sr.SOPInstanceUID == report.sop_instance_uid
    assert sr.StudyInstanceUID == header.study_instance_uid
    assert str(sr.PatientName) == "Ødegård^Ærlig"
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "VERIFIED"
    verifier = sr.VerifyingObserverSequence[0]
    assert str(verifier.VerifyingObserverName) == "Nakamura^Yūko"
    assert verifier.VerifyingOrganization == "Hôpital Saint-Éloi"
    assert verifier.VerificationDateTime == "20261127143005.123456+0000"
    assert (sr.ContentDate, sr.ContentTime) == ("20261127", "143005.123456")
    assert sr.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "2000"
    assert observer_name(sr) == "Nakamura^Yūko"
    texts = section_texts(sr)
    assert texts["Findings"] == [SECTIONS["findings"]]
    assert texts["Impressions"] == [SECTIONS["impression"]]
    assert texts["Clinical Information"] == [SECTIONS["clinical_information"]]
    assert texts["Current Procedure Descriptions"] == ["PA and lateral."]
    assert "Prior Procedure Descriptions" not in texts  # empty sections are left out
    assert evidence_uids(sr) == {e.sop_instance_uid for e in evidence}
    assert predecessor_uids(sr) == {preliminary.sop_instance_uid}


def test_an_addendum_keeps_the_report_and_references_the_final(study) -> None:
    header, evidence = study
    final = make_report("final", 1)
    addendum = Addendum("Small nodule right apex: CT advised.", "Nakamura^Yūko", SIGNED_AT)
    report = make_report(
        "addendum",
        2,
        addenda=[addendum],
        predecessor=DocumentReference(final.series_instance_uid, final.sop_instance_uid),
    )
    part10 = encode_part10(build_report_sr(report, header, evidence))
    assert dciodvfy_errors(part10) == []
    sr = read_back(part10)
    texts = section_texts(sr)
    assert texts["Findings"] == [SECTIONS["findings"]]
    assert texts["Addendum"][0].startswith("Small nodule right apex: CT advised.")
    assert predecessor_uids(sr) == {final.sop_instance_uid}
    assert sr.VerificationFlag == "VERIFIED"


def test_the_same_version_builds_the_same_document(study) -> None:
    header, evidence = study
    report = make_report("final", 1)
    first = encode_part10(build_report_sr(report, header, evidence))
    again = encode_part10(build_report_sr(report, header, evidence))
    assert first == again


def test_evidence_is_read_from_archive_tags_without_documents() -> None:
    image = {
        "0008,0060": "CT",
        "0020,000d": "1.2.3",
        "0020,000e": "1.2.3.1",
        "0008,0018": "1.2.3.1.1",
        "0008,0016": "1.2.840.10008.5.1.4.1.1.2",
        "0010,0010": "Doe^Jane",
        "0020,0010": "7",
    }
    document = {**image, "0008,0060": "SR", "0020,000e": "1.2.3.9", "0008,0018": "1.2.3.9.1"}
    header, evidence = read_study_evidence([document, image])
    assert header.patient_name == "Doe^Jane" and header.study_id == "7"
    assert evidence == [EvidenceInstance("1.2.3.1", "1.2.3.1.1", "1.2.840.10008.5.1.4.1.1.2")]


def test_an_empty_study_cannot_be_reported(study) -> None:
    header, _ = study
    with pytest.raises(ValueError, match="no instances"):
        build_report_sr(make_report("final", 1), header, [])


@pytest.mark.parametrize(
    ("display", "email", "expected"),
    [
        ("Ada Lovelace", "ada@example.org", "Lovelace^Ada"),
        ("Jean Paul Sartre", "x@example.org", "Sartre^Jean Paul"),
        ("Curie^Marie", "m@example.org", "Curie^Marie"),
        ("", "radiologist@demo.example", "radiologist"),
    ],
)
def test_person_names(display, email, expected) -> None:
    assert person_name(display, email) == expected
