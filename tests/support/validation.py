"""Instances as the validation rules see them (a dict of DICOM keywords) and a fixed clock."""

from __future__ import annotations

import datetime

from core import tags as tg
from core.validation import ValidationPolicy

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
POLICY = ValidationPolicy(now=lambda: NOW)
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def make_instance(**changes: object) -> dict[str, object]:
    """A valid CT instance; keyword arguments replace (or, with None, remove) elements."""
    instance: dict[str, object] = {
        tg.SPECIFIC_CHARACTER_SET: "ISO_IR 192",
        tg.PATIENT_NAME: "Müller^Jürgen",
        tg.PATIENT_ID: "P1",
        tg.PATIENT_BIRTH_DATE: "19600102",
        tg.PATIENT_SEX: "M",
        tg.STUDY_INSTANCE_UID: "1.2.3.4",
        tg.SERIES_INSTANCE_UID: "1.2.3.4.1",
        tg.SOP_INSTANCE_UID: "1.2.3.4.1.1",
        tg.SOP_CLASS_UID: CT_IMAGE,
        tg.MODALITY: "CT",
        tg.STUDY_DATE: "20261120",
        tg.STUDY_TIME: "101500",
        tg.ACCESSION_NUMBER: "ACC1",
        tg.ROWS: "512",
        tg.COLUMNS: "512",
        tg.BITS_ALLOCATED: "16",
        tg.BITS_STORED: "12",
        tg.HIGH_BIT: "11",
        tg.SAMPLES_PER_PIXEL: "1",
        tg.PIXEL_DATA: None,
    }
    for keyword, value in changes.items():
        tag = getattr(tg, keyword)
        if value is None:
            instance.pop(tag, None)
        else:
            instance[tag] = value
    return instance
