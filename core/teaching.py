"""Teaching files: a case's text and its rules, the de-identification profile of its copy,
and the manifest that travels with an exported collection.

A radiologist marks a case for teaching with a title, diagnosis, findings, keywords, a
difficulty and the key series. The platform copies those series de-identified (PS3.15
Annex E basic profile with dates shifted, new UIDs, burned-in annotation excluded, every
instance scanned for its source's identifiers: `core/export_instances.py`, as research
exports do) into the teaching collection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from core.deidentify import Option

MAX_TITLE = 200
MAX_DIAGNOSIS = 200
MAX_FINDINGS = 10_000
MAX_KEYWORDS = 20
MAX_KEYWORD = 50
MAX_SERIES = 20
# Dates shifted (the patient's own offset), everything else by the basic profile.
TEACHING_OPTIONS = frozenset({Option.MODIFIED_DATES})
MANIFEST_NAME = "teaching-manifest.json"
KEYWORD_SPLIT = re.compile(r"[,;\n]+")


class Difficulty(StrEnum):
    BEGINNER = "beginner"
    INTERMEDIATE = "intermediate"
    ADVANCED = "advanced"


class CaseState(StrEnum):
    COPYING = "copying"  # the row exists, the copy is being made (or was cut short)
    READY = "ready"
    FAILED = "failed"  # nothing of the series could be copied, or the archive failed


class Location(StrEnum):
    ARCHIVE = "archive"
    RESEARCH = "research"


class TeachingError(ValueError):
    """A case the rules refuse; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CaseText:
    title: str
    diagnosis: str
    findings: str
    keywords: tuple[str, ...]
    difficulty: Difficulty

    @property
    def keyword_text(self) -> str:
        return ", ".join(self.keywords)


def bounded(value: object, limit: int, what: str, *, required: bool = False) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise TeachingError(f"{what} is required")
    if len(text) > limit:
        raise TeachingError(f"{what} is longer than {limit} characters")
    return text


def parse_keywords(value: object) -> tuple[str, ...]:
    """Comma-separated (or a list), lower case, each once, in the order given."""
    items = value if isinstance(value, list | tuple) else KEYWORD_SPLIT.split(str(value or ""))
    keywords: list[str] = []
    for item in items:
        keyword = " ".join(str(item).split()).lower()
        if len(keyword) > MAX_KEYWORD:
            raise TeachingError(f"keyword {keyword[:20]!r}... is longer than {MAX_KEYWORD}")
        if keyword and keyword not in keywords:
            keywords.append(keyword)
    if len(keywords) > MAX_KEYWORDS:
        raise TeachingError(f"at most {MAX_KEYWORDS} keywords")
    return tuple(keywords)


def parse_case_text(form: Mapping[str, object]) -> CaseText:
    """The teaching text of a case, checked (title required, difficulty from the list)."""
    try:
        difficulty = Difficulty(str(form.get("difficulty") or "").strip().lower())
    except ValueError:
        allowed = ", ".join(item.value for item in Difficulty)
        raise TeachingError(f"difficulty must be one of {allowed}") from None
    return CaseText(
        title=bounded(form.get("title"), MAX_TITLE, "the title", required=True),
        diagnosis=bounded(form.get("diagnosis"), MAX_DIAGNOSIS, "the diagnosis"),
        findings=bounded(form.get("findings"), MAX_FINDINGS, "the findings"),
        keywords=parse_keywords(form.get("keywords")),
        difficulty=difficulty,
    )


def check_series_choice(chosen: Iterable[str], available: Iterable[str]) -> list[str]:
    """The key series: at least one, each a series of the study."""
    picked = list(dict.fromkeys(uid for uid in chosen if uid))
    if not picked:
        raise TeachingError("choose at least one key series")
    if len(picked) > MAX_SERIES:
        raise TeachingError(f"at most {MAX_SERIES} key series")
    unknown = set(picked) - set(available)
    if unknown:
        raise TeachingError("a chosen series is not a series of this study")
    return picked


def check_may_edit(*, editor_id: int, editor_is_admin: bool, author_id: int) -> None:
    """The author edits and retires their case; an admin may retire any."""
    if editor_id != author_id and not editor_is_admin:
        raise TeachingError("only the case's author may change it", 403)


def build_manifest(cases: Iterable[Mapping[str, object]]) -> str:
    """`teaching-manifest.json`: each case's teaching text and its copy's UIDs and files,
    nothing of the source."""
    return json.dumps({"format": "pacs-teaching-collection/1", "cases": list(cases)}, indent=2)
