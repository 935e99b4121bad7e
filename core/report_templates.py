"""Report templates: pre-filled sections per modality and body part, kept as data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.reports import clean_sections

TEMPLATES_FILE = Path(__file__).with_name("report_templates.json")
GENERIC = "generic"


@dataclass(frozen=True)
class TemplateSpec:
    key: str
    name: str
    modality: str  # comma-separated modalities it suits, empty for any
    body_part: str  # comma-separated body parts it suits, empty for any
    sections: dict[str, str]


def load_default_templates(path: Path = TEMPLATES_FILE) -> list[TemplateSpec]:
    """The templates a new installation starts with."""
    return [parse_template(item) for item in json.loads(path.read_text(encoding="utf-8"))]


def parse_template(item: dict[str, Any]) -> TemplateSpec:
    return TemplateSpec(
        key=item["key"],
        name=item["name"],
        modality=item.get("modality", "").upper(),
        body_part=item.get("body_part", "").upper(),
        sections=clean_sections(item.get("sections", {})),
    )


def split_terms(text: str) -> set[str]:
    return {term.strip().upper() for term in text.split(",") if term.strip()}


def suggest_template(templates: Sequence[TemplateSpec], modality: str, body_part: str) -> str:
    """The key of the template that fits the study best: modality and body part, else the
    generic one."""
    for template in templates:
        modalities, parts = split_terms(template.modality), split_terms(template.body_part)
        if modality.upper() in modalities and body_part.upper() in parts:
            return template.key
    return GENERIC
