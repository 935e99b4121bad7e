"""The order services' settings: ports, the listener turned off, the worklist's AE title."""

from __future__ import annotations

import pytest

from config.settings import SettingsError, load_settings


def test_defaults(tmp_path) -> None:
    settings = load_settings({"PACS_HOME": str(tmp_path)})
    assert (settings.hl7_port, settings.mwl_port, settings.mwl_aet) == (2575, 4243, "ORTHANC")
    assert settings.hl7_results_host == ""


def test_the_worklist_title_follows_the_archives_unless_given(tmp_path) -> None:
    env = {"PACS_HOME": str(tmp_path), "PACS_ORTHANC_AET": "ARCHIVE"}
    assert load_settings(env).mwl_aet == "ARCHIVE"
    assert load_settings({**env, "PACS_MWL_AET": "WORKLIST"}).mwl_aet == "WORKLIST"


def test_zero_turns_the_listener_off_but_not_the_worklist(tmp_path) -> None:
    home = {"PACS_HOME": str(tmp_path)}
    assert load_settings({**home, "PACS_HL7_PORT": "0"}).hl7_port == 0
    with pytest.raises(SettingsError, match="PACS_MWL_PORT"):
        load_settings({**home, "PACS_MWL_PORT": "0"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PACS_HL7_PORT", "70000"),
        ("PACS_HL7_PORT", "mllp"),
        ("PACS_HL7_RESULTS_PORT", "-1"),
        ("PACS_MWL_AET", "A-TITLE-FAR-TOO-LONG"),
    ],
)
def test_bad_values_are_named(tmp_path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({"PACS_HOME": str(tmp_path), name: value})
