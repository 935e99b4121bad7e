"""What a report's SR says about its study: the patient and study header and the evidence
(every image instance, by series, SOP instance and SOP class UID).

Read from the instances' tags once, at ingestion, and kept in the database, so that signing
a report never asks the archive for a study's instances (see storage/evidence.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core import tags as tg
from core.records import NON_IMAGING_MODALITIES
from core.tags import Tags


@dataclass(frozen=True)
class EvidenceInstance:
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str


@dataclass(frozen=True)
class StudyHeader:
    """Patient and study attributes the SR repeats, as the archive's DICOM gives them."""

    study_instance_uid: str
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_id: str = ""
    referring_physician: str = ""
    institution: str = ""


def is_evidence(instance: Tags) -> bool:
    """Images are evidence; documents and annotations (our own SRs among them) are not."""
    return tg.get_text(instance, tg.MODALITY) not in NON_IMAGING_MODALITIES


def read_header(instance: Tags) -> StudyHeader:
    return StudyHeader(
        study_instance_uid=tg.get_text(instance, tg.STUDY_INSTANCE_UID),
        patient_name=tg.get_text(instance, tg.PATIENT_NAME),
        patient_id=tg.get_text(instance, tg.PATIENT_ID),
        patient_birth_date=tg.get_text(instance, tg.PATIENT_BIRTH_DATE),
        patient_sex=tg.get_text(instance, tg.PATIENT_SEX),
        study_date=tg.get_text(instance, tg.STUDY_DATE),
        study_time=tg.get_text(instance, tg.STUDY_TIME),
        accession_number=tg.get_text(instance, tg.ACCESSION_NUMBER),
        study_id=tg.get_text(instance, tg.STUDY_ID),
        referring_physician=tg.get_text(instance, tg.REFERRING_PHYSICIAN_NAME),
        institution=tg.get_text(instance, tg.INSTITUTION_NAME),
    )


def read_evidence_instance(instance: Tags) -> EvidenceInstance:
    return EvidenceInstance(
        series_instance_uid=tg.get_text(instance, tg.SERIES_INSTANCE_UID),
        sop_instance_uid=tg.get_text(instance, tg.SOP_INSTANCE_UID),
        sop_class_uid=tg.get_text(instance, tg.SOP_CLASS_UID),
    )


def read_study_evidence(instances: Sequence[Tags]) -> tuple[StudyHeader, list[EvidenceInstance]]:
    """The header (of the first image, else the first instance) and the evidence, in UID order
    so that the same study always gives the same document."""
    images = [i for i in instances if is_evidence(i)]
    header = read_header((images or list(instances))[0])
    return header, sort_evidence(read_evidence_instance(i) for i in images)


def sort_evidence(evidence: Iterable[EvidenceInstance]) -> list[EvidenceInstance]:
    return sorted(evidence, key=lambda e: (e.series_instance_uid, e.sop_instance_uid))
