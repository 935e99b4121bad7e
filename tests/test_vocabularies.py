"""The words stored in the database and read by the warehouse: study event kinds and
quarantine states keep their names, and the warehouse's SQL names only kinds that exist."""

from __future__ import annotations

import re
from pathlib import Path

from core.quarantine import UNRESOLVED_STATES, QuarantineError, QuarantineState
from core.reports import EVENT_KINDS, ReportAction
from core.study_events import StudyEventKind
from warehouse import extract

MODELS = Path(extract.__file__).resolve().parent / "models"


def test_study_event_kinds_keep_their_stored_names() -> None:
    assert {kind.value for kind in StudyEventKind} == {
        "received",
        "assigned",
        "released",
        "priority",
        "opened",
        "report_started",
        "preliminary",
        "final",
        "addendum",
    }


def test_every_signature_records_the_event_of_its_name() -> None:
    assert set(EVENT_KINDS) == set(ReportAction) - {ReportAction.EDIT}
    for action, kind in EVENT_KINDS.items():
        assert kind.value == action.value


def test_the_warehouse_reads_only_kinds_that_exist() -> None:
    assert set(extract.EVENT_KINDS) <= set(StudyEventKind)
    named = set()
    for model in MODELS.glob("*/*.sql"):
        sql = model.read_text()
        for match in re.finditer(r"kind\s*(?:=|in)\s*\(?([^)\n]*)", sql):
            named.update(re.findall(r"'([a-z_]+)'", match.group(1)))
    assert named, "no event kind found in the models"
    assert named <= {kind.value for kind in extract.EVENT_KINDS}


def test_quarantine_states_keep_their_stored_names() -> None:
    assert [s.value for s in QuarantineState] == ["open", "released", "cleared", "deleted"]
    assert set(UNRESOLVED_STATES) == {QuarantineState.OPEN, QuarantineState.RELEASED}
    assert QuarantineError("no open quarantine entry for x").status == 404
