"""A test that needs a missing tool skips on a developer's machine and fails under CI."""

from __future__ import annotations

import pytest

from tests.support import tools


@pytest.fixture
def missing_tool(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(tools.TOOLS, "nothing", ("/nonexistent/nothing", "nowhere"))
    return "nothing"


def test_a_missing_tool_skips_outside_ci(
    missing_tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="nothing is missing: nowhere"):
        tools.require_tool(missing_tool)


def test_a_missing_tool_fails_under_ci(missing_tool: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI a missing tool is a failure"):
        tools.require_tool(missing_tool)


def test_a_present_tool_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tools.TOOLS, "sh", ("sh", "Debian"))
    monkeypatch.setenv("CI", "true")
    tools.require_tool("sh")  # neither skips nor fails
