"""External tools some tests need. A missing tool skips those tests on a developer's machine
and fails them under CI (`CI=true`): CI must never lose a test silently.

Mark a test or a module with `@pytest.mark.requires("dciodvfy")` (tests/conftest.py applies
the mark with `require_tool`), or call `require_tool` where a mark does not fit.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# axe-core, the accessibility engine of the browser tests (scripts/install --test puts it there).
AXE_CORE = Path(__file__).resolve().parents[2] / "build" / "axe-core" / "4.14.1" / "axe.min.js"
# Tool -> (a command on PATH or an absolute path, where it comes from).
TOOLS = {
    "axe-core": (str(AXE_CORE), "npm package axe-core"),
    "chromium": (str(CHROMIUM), "Debian package chromium"),
    "dciodvfy": ("dciodvfy", "Debian package dicom3tools"),
    "docker-compose": ("docker-compose", "Debian package docker-compose"),
    "findscu": ("findscu", "Debian package dcmtk"),
    "dump2dcm": ("dump2dcm", "Debian package dcmtk"),
    "gunicorn": (str(Path(sys.executable).with_name("gunicorn")), "pip install -e .[test]"),
    "initdb": ("/usr/lib/postgresql/15/bin/initdb", "Debian package postgresql"),
    "pdftotext": ("pdftotext", "Debian package poppler-utils"),
}


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def find_tool(tool: str) -> str | None:
    command, _ = TOOLS[tool]
    if Path(command).is_absolute():
        return command if Path(command).exists() else None
    return shutil.which(command)


def require_tool(tool: str) -> None:
    """Skip the calling test (or module) when `tool` is missing; fail instead under CI."""
    if find_tool(tool) is not None:
        return
    reason = f"{tool} is missing: {TOOLS[tool][1]} (scripts/install --test installs it)"
    if under_ci():
        pytest.fail(f"{reason}; under CI a missing tool is a failure", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
