"""Where research exports are written: a staging folder, then a ZIP (or a research archive)."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.export_manifest import InstanceSummary

MANIFEST_NAME = "manifest.csv"
REPORT_NAME = "deidentification-report.json"


def stage_instance(staging: Path, summary: InstanceSummary, data: bytes) -> None:
    path = staging / summary.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_zip(
    staging: Path,
    out_path: Path,
    summaries: Iterable[InstanceSummary],
    manifest: str,
    report: dict[str, Any],
) -> Path:
    """The export as one ZIP (Patient/Study/Series folders, manifest, report), written to a
    temporary name and renamed, so a half-written file never looks finished."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(MANIFEST_NAME, manifest)
        archive.writestr(REPORT_NAME, json.dumps(report, indent=2))
        for summary in summaries:
            if summary.status == "exported":
                archive.write(staging / summary.path, summary.path)
    partial.replace(out_path)
    return out_path


def read_staged(staging: Path, summaries: Iterable[InstanceSummary]) -> Iterable[bytes]:
    for summary in summaries:
        if summary.status == "exported":
            yield (staging / summary.path).read_bytes()


def remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
