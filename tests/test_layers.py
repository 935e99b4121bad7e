"""The layer rules are a contract (`[tool.importlinter]` in pyproject.toml): the tree keeps
it, and a forbidden import added to a copy of the tree breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "core", "demo", "storage", "warehouse", "tasks", "flows", "portal", "pacs")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run the contract check on the packages under `root` (its folder comes first on the
    path, so a copy is analysed, not the installed tree)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_the_layer_contract() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages' Python files and pyproject.toml in a folder of their own, unbroken."""
    root = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package,
            root / package,
            ignore=shutil.ignore_patterns("__pycache__", "templates", "static", "data"),
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    assert lint_imports(root).returncode == 0, "the copy keeps the contract"
    return root


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("core/records.py", "import sqlalchemy", "core is pure domain"),
        ("core/reports.py", "from config.settings import Settings", "core is pure domain"),
        ("storage/accounts.py", "import portal.security", "storage imports nothing above it"),
        ("tasks/reports.py", "from portal import create_app", "tasks and flows never import"),
        ("portal/api/hooks.py", "from pacs.pipeline import make_dispatcher", "portal reaches"),
        ("portal/imports/__init__.py", "import flows.ingest_study", "portal reaches"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    tree_copy: Path, module: str, forbidden: str, contract: str
) -> None:
    target = tree_copy / module
    original = target.read_text()
    target.write_text(original + f"\n{forbidden}  # the violation under test\n")
    try:
        result = lint_imports(tree_copy)
    finally:
        target.write_text(original)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert [line for line in broken if line.startswith(contract)], result.stdout
    imported = forbidden.split()[1]  # the module named by the import statement
    assert f"{module[:-3].replace('/', '.').removesuffix('.__init__')} -> {imported}" in (
        result.stdout
    ), result.stdout
