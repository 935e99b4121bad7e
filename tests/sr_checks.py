"""Checks of SR documents shared by the report tests: dciodvfy and reading the content tree."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from pydicom import Dataset


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
