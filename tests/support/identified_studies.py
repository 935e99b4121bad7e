"""Studies full of synthetic identifiers, for the de-identification tests.

Identifiers sit in standard attributes, in sequences (nested), in private elements (text and
binary), in free text, in three character sets (UTF-8, Latin-1, Japanese in UTF-8), in a
derived series that references another, in a multi-frame ultrasound cine and in an SR report
whose evidence references the images. `IDENTIFIERS` lists every value that must not survive.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.support.studies import clone_study


@dataclass(frozen=True)
class SyntheticPatient:
    name: str
    patient_id: str
    birth_date: str
    charset: str
    accession: str
    other_id: str
    address: str
    phone: str
    referring: str
    institution: str
    extra_names: tuple[str, ...] = field(default=())


PATIENTS = (
    SyntheticPatient(
        name="Quixtarová^Zebulonie^Herbertine^Dr",
        patient_id="QXID-778812",
        birth_date="19610417",
        charset="ISO_IR 192",
        accession="ACC99817733",
        other_id="OTHER-551177",
        address="17 Quillfeather Lane, Brumbleton",
        phone="+1-555-013-4477",
        referring="Vandermolen^Kasimir",
        institution="Saint Xylophora Hospital",
        extra_names=("Quixtarová", "Zebulonie", "Herbertine"),
    ),
    SyntheticPatient(
        name="Müllerström^Jürgenhold",
        patient_id="MUEL-30091",
        birth_date="19480202",
        charset="ISO_IR 100",
        accession="ACC55120987",
        other_id="OTHER-983311",
        address="Brunnengässchen 4, Wolkenbruch",
        phone="0049-30-55501234",
        referring="Kleinfeldt^Ottokar",
        institution="Klinik Sonnenwaldhöhe",
        extra_names=("Müllerström", "Jürgenhold"),
    ),
    SyntheticPatient(
        name="Yamadashi^Hanakoto=山田^花子",
        patient_id="JPN-4471190",
        birth_date="19790808",
        charset="ISO_IR 192",
        accession="ACC31415926",
        other_id="OTHER-271828",
        address="3-1 Kasumigaseki Chiyoda",
        phone="+81-3-5555-0199",
        referring="Tanakabe^Ichiro",
        institution="Hikarigaoka Medical Centre",
        extra_names=("Yamadashi", "Hanakoto", "山田", "花子"),
    ),
)
STUDY_DATE = "20240311"
PRIVATE_CREATOR = "ACME RESEARCH 1.0"


def identifiers_of(patient: SyntheticPatient) -> set[str]:
    """Every value of this patient that must not appear in any exported byte."""
    return {
        patient.patient_id,
        patient.birth_date,
        patient.accession,
        patient.other_id,
        patient.address,
        patient.phone,
        patient.institution,
        *patient.referring.split("^"),
        *patient.extra_names,
        "Operatorfeld",
        "Performinghaus",
        "STUDY-ID-8812",
        STUDY_DATE,
    }


def add_identifiers(ds: Dataset, patient: SyntheticPatient) -> None:
    """Identifiers everywhere the profile must reach."""
    ds.SpecificCharacterSet = patient.charset
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.AccessionNumber = patient.accession
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.phone
    ds.ReferringPhysicianName = patient.referring
    ds.ReferringPhysicianTelephoneNumbers = patient.phone
    ds.InstitutionName = patient.institution
    ds.InstitutionAddress = "1 Hospital Plaza"
    ds.OperatorsName = "Operatorfeld^Bea"
    ds.PerformingPhysicianName = "Performinghaus^Carl"
    ds.StudyID = "STUDY-ID-8812"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.InstanceCreationDate = STUDY_DATE
    ds.AcquisitionDateTime = f"{STUDY_DATE}101500"
    family = patient.extra_names[0]
    ds.ImageComments = f"Patient {family}, MRN {patient.patient_id}, seen {STUDY_DATE}"
    ds.StudyDescription = f"CT chest for {family}"
    ds.AdditionalPatientHistory = f"called {patient.phone} about {patient.name}"
    other = Dataset()
    other.PatientID = patient.other_id
    other.IssuerOfPatientID = patient.institution
    ds.OtherPatientIDsSequence = Sequence([other])
    request = Dataset()
    request.AccessionNumber = patient.accession
    request.RequestedProcedureID = "RP-" + patient.patient_id
    request.ScheduledProcedureStepID = "SPS-" + patient.patient_id
    request.StudyInstanceUID = ds.StudyInstanceUID
    ds.RequestAttributesSequence = Sequence([request])
    code = Dataset()
    code.CodeValue = "X1"
    code.CodingSchemeDesignator = "99LOCAL"
    code.CodeMeaning = "Chest protocol"
    ds.PerformedProtocolCodeSequence = Sequence([code])
    block = ds.private_block(0x0099, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", patient.patient_id)
    block.add_new(0x02, "PN", patient.name.split("=")[0])
    block.add_new(0x03, "UN", f"{patient.accession}\x00".encode())
    block.add_new(0x04, "LT", f"note about {family} born {patient.birth_date}")
    nested = Dataset()
    nested_block = nested.private_block(0x0099, PRIVATE_CREATOR, create=True)
    nested_block.add_new(0x01, "LO", patient.phone)
    block.add_new(0x05, "SQ", Sequence([nested]))
    # An overlay plane and a curve, which the profile removes.
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", b"\xff" * 8)
    ds.add_new(0x60004000, "LT", f"overlay by {family}")


def build_patient_studies(patient: SyntheticPatient, modality: str, count: int) -> list[Dataset]:
    """A study of `patient`: an original series and a derived one referencing it."""
    originals = clone_study(modality, limit=count)
    for ds in originals:
        add_identifiers(ds, patient)
    derived = []
    series_uid = generate_uid()
    for index, source in enumerate(originals[: max(1, count // 2)]):
        ds = copy.deepcopy(source)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = 99
        ds.InstanceNumber = index + 1
        ds.ImageType = ["DERIVED", "SECONDARY"]
        reference = Dataset()
        reference.ReferencedSOPClassUID = source.SOPClassUID
        reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
        ds.ReferencedImageSequence = Sequence([reference])
        ds.SourceImageSequence = Sequence([copy.deepcopy(reference)])
        ref_series = Dataset()
        ref_series.SeriesInstanceUID = source.SeriesInstanceUID
        ref_series.ReferencedInstanceSequence = Sequence([copy.deepcopy(reference)])
        ds.ReferencedSeriesSequence = Sequence([ref_series])
        derived.append(ds)
    return originals + derived


def build_report(images: list[Dataset], patient: SyntheticPatient) -> Dataset:
    """A Basic Text SR about `images`, naming the patient in its text and observer."""
    first = images[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword in ("StudyInstanceUID", "StudyDate", "StudyTime", "StudyID"):
        setattr(ds, keyword, first.get(keyword, ""))
    ds.SpecificCharacterSet = patient.charset
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = "F"
    ds.AccessionNumber = patient.accession
    ds.ReferringPhysicianName = patient.referring
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    ds.Manufacturer = "PACS"
    ds.ContentDate = STUDY_DATE
    ds.ContentTime = "120000"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([code_item("18748-4", "LN", "Diagnostic Imaging Report")])
    family = patient.extra_names[0]
    text = Dataset()
    text.RelationshipType = "CONTAINS"
    text.ValueType = "TEXT"
    text.ConceptNameCodeSequence = Sequence([code_item("121071", "DCM", "Finding")])
    text.TextValue = f"{family} ({patient.patient_id}) has no acute findings. Call {patient.phone}."
    observer = Dataset()
    observer.RelationshipType = "HAS OBS CONTEXT"
    observer.ValueType = "PNAME"
    observer.ConceptNameCodeSequence = Sequence(
        [code_item("121008", "DCM", "Person Observer Name")]
    )
    observer.PersonName = patient.referring
    ds.ContentSequence = Sequence([observer, text])
    evidence_series = Dataset()
    evidence_series.SeriesInstanceUID = first.SeriesInstanceUID
    evidence_series.ReferencedSOPSequence = Sequence(
        [
            referenced(image)
            for image in images
            if image.SeriesInstanceUID == first.SeriesInstanceUID
        ]
    )
    evidence = Dataset()
    evidence.StudyInstanceUID = first.StudyInstanceUID
    evidence.ReferencedSeriesSequence = Sequence([evidence_series])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    return ds


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def referenced(image: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = image.SOPClassUID
    item.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return item


@dataclass
class IdentifiedCohort:
    datasets: list[Dataset]
    identifiers: set[str]
    source_uids: set[str]


def build_identified_cohort(*, with_reports: bool = True) -> IdentifiedCohort:
    """Three patients: CT (UTF-8), MR (Latin-1) with an SR, US cine (Japanese) with
    burned-in variants; every identifier and source UID listed for the leak checks."""
    datasets: list[Dataset] = []
    identifiers: set[str] = set()
    ct = build_patient_studies(PATIENTS[0], "CT", 4)
    mr = build_patient_studies(PATIENTS[1], "MR", 4)
    us = build_patient_studies(PATIENTS[2], "US", 2)
    us[0].BurnedInAnnotation = "YES"  # excluded
    del us[1].BurnedInAnnotation  # excluded: ultrasound without a NO
    datasets += ct + mr + us
    if with_reports:
        datasets.append(build_report(mr, PATIENTS[1]))
    for patient in PATIENTS:
        identifiers |= identifiers_of(patient)
    source_uids = set()
    for ds in datasets:
        for elem in ds.iterall():
            if elem.VR == "UI" and not str(elem.value).startswith("1.2.840.10008."):
                source_uids.add(str(elem.value))
    return IdentifiedCohort(datasets=datasets, identifiers=identifiers, source_uids=source_uids)
