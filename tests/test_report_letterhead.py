"""Reports look like the department's: its name and address head the PDF (and the read page,
checked in tests/test_demo_browser.py), and the study line never doubles the modality."""

from __future__ import annotations

import datetime
import subprocess

import pytest

from config.settings import load_settings
from core.records import describe_study_line
from portal.reports.pdf import render_report_pdf
from storage.models.reports import Report, ReportDocument
from storage.models.studies import Study
from storage.reports import view_report

NOW = datetime.datetime(2026, 11, 30, 9, 30, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("modality", "description", "line"),
    [
        ("CT", "CT THORAX LOW DOSE FOLLOW-UP", "CT THORAX LOW DOSE FOLLOW-UP"),
        ("CT", "ct head", "ct head"),
        ("MR", "BRAIN WITHOUT CONTRAST", "MR BRAIN WITHOUT CONTRAST"),
        ("CR", "CRANIUM AP", "CR CRANIUM AP"),  # a word that merely starts with it
        ("US", "", "US"),
        ("", "XR CHEST", "XR CHEST"),
        ("DX", "  DX  HAND  ", "DX HAND"),
    ],
)
def test_the_study_line_names_the_modality_once(modality, description, line) -> None:
    assert describe_study_line(modality, description) == line


def test_the_department_is_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "PACS_HOME": "/tmp/unused",
            "PACS_DEPARTMENT_NAME": "Radiologie, Klinikum Nordstadt",
            "PACS_DEPARTMENT_ADDRESS": "Hauptstraße 1\\n30161 Hannover",
        }
    )
    assert settings.department_name == "Radiologie, Klinikum Nordstadt"
    assert settings.department_address == "Hauptstraße 1\n30161 Hannover"
    assert load_settings({"PACS_HOME": "/tmp/unused"}).department_name == (
        "Department of Radiology"
    )


@pytest.mark.requires("pdftotext")
def test_the_pdf_carries_the_letterhead_and_one_modality(tmp_path) -> None:
    study = Study(
        modality="CT",
        description="CT THORAX LOW DOSE FOLLOW-UP",
        patient_name="Müller^Jürgen",
        patient_id="DEMO0001",
        accession_number="ACC202610699",
        referring_physician="House^Gregory^^Dr",
    )
    report = Report(status="final", sections={"impression": "Stable 4 mm nodule."})
    report.documents = [
        ReportDocument(
            sequence=1,
            kind="final",
            sections={"findings": "Unchanged nodule.", "impression": "Stable 4 mm nodule."},
            signed_by="radiologist@demo.example",
            signer_name="Radiologist^Rita^^Dr",
            signed_at=NOW,
        )
    ]
    pdf = render_report_pdf(
        study,
        view_report(report),
        department="Radiologie, Klinikum Nordstadt",
        address="Hauptstraße 1\n30161 Hannover",
    )
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[:2] == ["Radiologie, Klinikum Nordstadt", "Hauptstraße 1"]
    assert lines[2] == "30161 Hannover"
    assert "CT THORAX LOW DOSE FOLLOW-UP" in text
    assert "CT CT" not in text
