"""The report as a PDF (fpdf2, DejaVu Sans embedded so names and text in any European
script print as typed)."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

from core.records import describe_study_line, format_person_name
from core.reports import SECTIONS
from storage.models.studies import Study
from storage.reports import ReportView

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")  # Debian's fonts-dejavu-core


class ReportPdf(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("DejaVu", size=8)
        self.cell(0, 6, f"Page {self.page_no()}/{{nb}}", align="C")


def render_report_pdf(
    study: Study, view: ReportView, *, department: str = "", address: str = ""
) -> bytes:
    """The report on A4 under the department's letterhead (PACS_DEPARTMENT_NAME/_ADDRESS)."""
    pdf = ReportPdf(format="A4")
    pdf.set_title(f"Radiology report {study.accession_number}".strip())
    pdf.set_author(view.signed.signed_by if view.signed else "")
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_margins(18, 16, 18)
    pdf.add_page()
    if department:
        pdf.set_font("DejaVu", "B", 12)
        pdf.multi_cell(0, 6, department, new_x="LMARGIN", new_y="NEXT")
    if address:
        pdf.set_font("DejaVu", size=9)
        pdf.multi_cell(0, 4.5, address, new_x="LMARGIN", new_y="NEXT")
    if department or address:
        pdf.ln(4)
    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(0, 10, f"Radiology report — {view.label}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", size=10)
    facts = [
        ("Patient", format_person_name(study.patient_name)),
        ("Patient ID", study.patient_id),
        ("Birth date / sex", f"{study.patient_birth_date or ''} {study.patient_sex}".strip()),
        ("Accession", study.accession_number),
        ("Study", describe_study_line(study.modality, study.description)),
        ("Study date", f"{study.study_datetime:%Y-%m-%d %H:%M}" if study.study_datetime else ""),
        ("Referring physician", format_person_name(study.referring_physician)),
    ]
    for name, value in facts:
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(45, 6, name)
        pdf.set_font("DejaVu", size=10)
        pdf.multi_cell(0, 6, value or "-", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for name, heading in SECTIONS.items():
        text = view.sections.get(name, "").strip()
        if text:
            write_section(pdf, heading, text)
    for addendum in view.addenda:
        write_section(
            pdf,
            f"Addendum, {addendum.signed_at:%Y-%m-%d %H:%M} UTC, {addendum.signed_by}",
            addendum.addendum_text,
        )
    pdf.ln(2)
    pdf.set_font("DejaVu", size=9)
    for document in dict.fromkeys(d for d in (view.preliminary, view.signed) if d is not None):
        pdf.multi_cell(
            0,
            5,
            f"{document.kind.capitalize()} signed by {format_person_name(document.signer_name)} "
            f"({document.signed_by}) on {document.signed_at:%Y-%m-%d %H:%M} UTC",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    return bytes(pdf.output())


def write_section(pdf: FPDF, heading: str, text: str) -> None:
    pdf.set_font("DejaVu", "B", 11)
    pdf.multi_cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", size=10)
    pdf.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
