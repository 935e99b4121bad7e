"""Radiology reports as DICOM Structured Reports (highdicom Comprehensive SR).

The content tree follows TID 2000 (Basic Diagnostic Imaging Report) as far as
highdicom allows: language, the author as person observer, one container per
section (CID 7001 headings) holding TEXT items, and the study's instances as
evidence. Preliminary documents are PARTIAL/UNVERIFIED, final ones and their
addenda COMPLETE/VERIFIED; every later document names its predecessor.
"""

from __future__ import annotations

import datetime
import io
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import highdicom as hd
from pydicom import Dataset
from pydicom.config import IGNORE
from pydicom.dataelem import DataElement
from pydicom.filewriter import dcmwrite
from pydicom.sr.codedict import codes
from pydicom.uid import ComprehensiveSRStorage

from core.evidence import EvidenceInstance, StudyHeader
from core.reports import SECTIONS

CHARACTER_SET = "ISO_IR 192"  # UTF-8: report text and names in any language
MANUFACTURER = "PACS platform"
SERIES_NUMBER = 9901
REPORT_TITLE = hd.sr.CodedConcept("18748-4", "LN", "Diagnostic Imaging Report")
LANGUAGE = hd.sr.CodedConcept("en", "RFC5646", "English")
# Section -> (container heading from CID 7001, name of its TEXT items from CID 7002).
SECTION_CODES = {
    "clinical_information": (codes.LN.ClinicalInformation, codes.DCM.History),
    "comparison": (codes.DCM.PriorProcedureDescriptions, codes.DCM.ProcedureDescription),
    "technique": (codes.DCM.CurrentProcedureDescriptions, codes.DCM.ProcedureDescription),
    "findings": (codes.DCM.Findings, codes.DCM.Finding),
    "impression": (codes.DCM.Impressions, codes.DCM.Impression),
}
ADDENDUM_CODES = (codes.DCM.Addendum, codes.DCM.Comment)
# A critical result: its own section (CID 7001 "Communication of Critical Results"), the
# flag with its category as "Urgency", each documented call as "Results communicated".
CRITICAL_SECTION = codes.LN.CommunicationOfCriticalResults
CRITICAL_FLAG = codes.SCT.Urgency
CRITICAL_COMMUNICATION = codes.DCM.ResultsCommunicated
REFERENCED_SOP_CLASS_UID = 0x00081150
REFERENCED_SOP_INSTANCE_UID = 0x00081155


@dataclass(frozen=True)
class DocumentReference:
    series_instance_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class Addendum:
    text: str
    author_name: str
    signed_at: datetime.datetime


@dataclass(frozen=True)
class CriticalContent:
    """What the SR says of a critical result: the flag and the communications so far."""

    flag: str  # "Critical result, Immediate (minutes): flagged by ... at ..."
    communications: Sequence[str] = field(default=())


@dataclass(frozen=True)
class SignedReport:
    """One signed version of a report: what the SR document says."""

    kind: str  # preliminary, final, addendum
    sections: Mapping[str, str]
    author_name: str  # DICOM PN
    signed_at: datetime.datetime  # aware, UTC
    series_instance_uid: str
    sop_instance_uid: str
    instance_number: int
    addenda: Sequence[Addendum] = field(default=())
    predecessor: DocumentReference | None = None
    critical: CriticalContent | None = None

    @property
    def verified(self) -> bool:
        return self.kind != "preliminary"


def build_report_sr(
    report: SignedReport, header: StudyHeader, evidence: Sequence[EvidenceInstance]
) -> hd.sr.ComprehensiveSR:
    """The SR document of one signed version; the same inputs give the same document."""
    if not evidence:
        raise ValueError("the study has no instances to report on")
    predecessors = None
    if report.predecessor is not None:
        predecessors = [make_reference_dataset(header, report.predecessor)]
    organization = header.institution or MANUFACTURER
    sr = hd.sr.ComprehensiveSR(
        evidence=[make_header_dataset(header, evidence[0])],
        content=build_content(report),
        series_instance_uid=report.series_instance_uid,
        series_number=SERIES_NUMBER,
        sop_instance_uid=report.sop_instance_uid,
        instance_number=report.instance_number,
        manufacturer=MANUFACTURER,
        is_complete=report.verified,
        is_final=report.verified,
        is_verified=report.verified,
        institution_name=header.institution or None,
        verifying_observer_name=report.author_name if report.verified else None,
        verifying_organization=organization if report.verified else None,
        previous_versions=predecessors,
        specific_character_set=CHARACTER_SET,
        series_description="Radiology report",
    )
    # highdicom was given the first instance only: it checks each UID of its evidence again,
    # ~2 ms an instance, seconds for a 3,000-image CT. The whole sequence is made here.
    sr.CurrentRequestedProcedureEvidenceSequence = make_evidence_sequence(header, evidence)
    stamp_times(sr, report.signed_at)
    return sr


def build_content(report: SignedReport) -> hd.sr.ContainerContentItem:
    root = hd.sr.ContainerContentItem(name=REPORT_TITLE, template_id="2000")
    root.ContentSequence = hd.sr.ContentSequence(
        [
            *hd.sr.LanguageOfContentItemAndDescendants(LANGUAGE),
            *hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                    name=report.author_name
                ),
            ),
            *build_sections(report),
        ]
    )
    return root


def build_sections(report: SignedReport) -> list[hd.sr.ContainerContentItem]:
    sections = []
    for name in SECTIONS:
        text = report.sections.get(name, "").strip()
        if text:
            heading, item = SECTION_CODES[name]
            sections.append(make_section(heading, [make_text(item, text)]))
    if report.addenda:
        heading, item = ADDENDUM_CODES
        texts = [make_text(item, describe_addendum(a)) for a in report.addenda]
        sections.append(make_section(heading, texts))
    if report.critical is not None:
        texts = [make_text(CRITICAL_FLAG, report.critical.flag)]
        texts += [
            make_text(CRITICAL_COMMUNICATION, text) for text in report.critical.communications
        ]
        sections.append(make_section(CRITICAL_SECTION, texts))
    return sections


def describe_addendum(addendum: Addendum) -> str:
    signed = addendum.signed_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"{addendum.text}\n({addendum.author_name.replace('^', ' ')}, {signed})"


def make_section(heading: object, items: list[hd.sr.TextContentItem]) -> hd.sr.ContainerContentItem:
    section = hd.sr.ContainerContentItem(name=heading, relationship_type="CONTAINS")
    section.ContentSequence = hd.sr.ContentSequence(items)
    return section


def make_text(name: object, text: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=text, relationship_type="CONTAINS")


def make_header_dataset(header: StudyHeader, first: EvidenceInstance) -> Dataset:
    """What highdicom reads from the evidence: the patient and study attributes the SR copies."""
    ds = Dataset()
    ds.StudyInstanceUID = header.study_instance_uid
    ds.SeriesInstanceUID = first.series_instance_uid
    ds.SOPInstanceUID = first.sop_instance_uid
    ds.SOPClassUID = first.sop_class_uid
    ds.SpecificCharacterSet = CHARACTER_SET
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.patient_birth_date
    ds.PatientSex = header.patient_sex
    ds.StudyDate = header.study_date
    ds.StudyTime = header.study_time
    ds.AccessionNumber = header.accession_number
    ds.StudyID = header.study_id
    ds.ReferringPhysicianName = header.referring_physician
    return ds


def make_evidence_sequence(
    header: StudyHeader, evidence: Sequence[EvidenceInstance]
) -> list[Dataset]:
    """The Current Requested Procedure Evidence Sequence (Hierarchical SOP Instance Reference
    Macro: the study, its series, their instances) as highdicom makes it, with the UIDs taken
    as the archive gave them rather than converted and checked one by one."""
    series_items = []
    for series_uid, members in itertools.groupby(evidence, key=lambda e: e.series_instance_uid):
        series_item = Dataset()
        series_item.SeriesInstanceUID = series_uid
        series_item.ReferencedSOPSequence = [
            make_uid_item(
                (REFERENCED_SOP_CLASS_UID, item.sop_class_uid),
                (REFERENCED_SOP_INSTANCE_UID, item.sop_instance_uid),
            )
            for item in members
        ]
        series_items.append(series_item)
    study_item = Dataset()
    study_item.StudyInstanceUID = header.study_instance_uid
    study_item.ReferencedSeriesSequence = series_items
    return [study_item]


def make_uid_item(*elements: tuple[int, str]) -> Dataset:
    item = Dataset()
    for tag, uid in elements:
        item[tag] = DataElement(tag, "UI", uid, already_converted=True, validation_mode=IGNORE)
    return item


def make_reference_dataset(header: StudyHeader, reference: DocumentReference) -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID = header.study_instance_uid
    ds.SeriesInstanceUID = reference.series_instance_uid
    ds.SOPInstanceUID = reference.sop_instance_uid
    ds.SOPClassUID = ComprehensiveSRStorage
    return ds


def stamp_times(sr: Dataset, signed_at: datetime.datetime) -> None:
    """Dates and times of the signature (UTC), not of the build, so a rebuild is identical."""
    utc = signed_at.astimezone(datetime.UTC)
    date, time = utc.strftime("%Y%m%d"), utc.strftime("%H%M%S.%f")
    sr.TimezoneOffsetFromUTC = "+0000"
    sr.ContentDate, sr.ContentTime = date, time
    sr.InstanceCreationDate, sr.InstanceCreationTime = date, time
    sr.SeriesDate, sr.SeriesTime = date, time
    for item in sr.get("ContributingEquipmentSequence", []):
        item.ContributionDateTime = f"{date}{time}+0000"
    if "VerifyingObserverSequence" in sr:
        sr.VerifyingObserverSequence[0].VerificationDateTime = f"{date}{time}+0000"


def encode_part10(sr: Dataset) -> bytes:
    """The document as a Part 10 file (preamble and file meta: Orthanc needs them)."""
    buffer = io.BytesIO()
    dcmwrite(buffer, sr, enforce_file_format=True)
    return buffer.getvalue()


def person_name(display_name: str, email: str) -> str:
    """A user's name as DICOM PN ("Family^Given"): their display name, else their e-mail."""
    name = display_name.strip()
    if "^" in name:
        return name
    words = name.split()
    if len(words) >= 2:
        return f"{words[-1]}^{' '.join(words[:-1])}"
    return name or email.split("@")[0]
