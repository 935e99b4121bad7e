"""Shared by the report tests: studies in the archive and the database, dciodvfy, and
reading an SR's content tree."""

from __future__ import annotations

import datetime
import io
import subprocess
import tempfile
import time
from pathlib import Path

import pydicom
from flask import Flask
from flask.testing import FlaskClient
from pydicom import Dataset
from pydicom.filewriter import dcmwrite

from core.ingest import assess_study
from portal.extensions import db
from storage.archive import ArchiveClient
from storage.studies import save_assessment
from tests.support.studies import clone_study


def store_study(archive: ArchiveClient, **attributes: str) -> tuple[str, str, set[str]]:
    """A fresh CR study in the archive; returns its UID, Orthanc id and instance UIDs."""
    datasets = clone_study("CR", **attributes)
    results = [archive.upload_instance(part10_of(ds)) for ds in datasets]
    return datasets[0].StudyInstanceUID, results[0].study_id, {d.SOPInstanceUID for d in datasets}


def ingest(app: Flask, archive: ArchiveClient, orthanc_id: str) -> None:
    """What the ingestion flow does for one study, in the app's database."""
    with app.app_context():
        assessment = assess_study(archive.get_archived_study(orthanc_id))
        save_assessment(db.session, assessment, datetime.datetime.now(datetime.UTC))
        db.session.commit()


def wait_until_archived(
    client: FlaskClient, url: str, headers: dict[str, str], timeout: float = 20.0
) -> dict:
    """The report (API) once every signed document is in the archive: the portal sends each
    right after the signature, off the request."""
    deadline = time.monotonic() + timeout
    while True:
        report = client.get(url, headers=headers).json
        if report["archived"] or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def part10_of(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def fetch_sr(archive: ArchiveClient, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
    """The SR as the archive gives it back by WADO-RS, as a Part 10 file."""
    return part10_of(archive.dicomweb().retrieve_instance(study_uid, series_uid, sop_uid))


def read_part10(part10: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(part10))


def run_dciodvfy(part10: bytes) -> str:
    """dciodvfy's report on the file (Debian dicom3tools); errors are lines with 'Error'."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sr.dcm"
        path.write_bytes(part10)
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def dciodvfy_errors(part10: bytes) -> list[str]:
    return [line for line in run_dciodvfy(part10).splitlines() if line.startswith("Error")]


def section_texts(sr: Dataset) -> dict[str, list[str]]:
    """Heading meaning -> the TEXT values under it."""
    texts: dict[str, list[str]] = {}
    for item in sr.ContentSequence:
        if item.ValueType == "CONTAINER":
            heading = item.ConceptNameCodeSequence[0].CodeMeaning
            texts[heading] = [child.TextValue for child in item.ContentSequence]
    return texts


def observer_name(sr: Dataset) -> str:
    for item in sr.ContentSequence:
        if item.ValueType == "PNAME":
            return str(item.PersonName)
    return ""


def evidence_uids(sr: Dataset) -> set[str]:
    return {
        instance.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    }


def predecessor_uids(sr: Dataset) -> set[str]:
    return {
        instance.ReferencedSOPInstanceUID
        for study in sr.get("PredecessorDocumentsSequence", [])
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    }
