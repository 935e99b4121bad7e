"""The worklist gives the same rows and counts whichever way it plans a query.

`storage/worklist.py` lets one group of conditions lead (filters, search, date, sort) and
writes the others differently (`no_index`, `matches_elsewhere`, the search counted per
index range). Each query here is checked against the same list worked out in
Python, on both backends, with the page-sorting limit lowered so that the plans for many
matches run too."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from config.settings import load_settings
from portal import create_app
from portal.extensions import db
from storage.database import create_database_engine, open_session
from storage.models.studies import Study
from storage.worklist import WORKLIST_STATUSES, WorklistQuery, query_worklist
from tests.support.apps import make_study
from tests.support.services import make_env

STATUSES = ["final", "final", "received", "in_progress", "amended", "quarantined", "removed"]
QUERIES = [
    WorklistQuery(),
    WorklistQuery(modality="ct"),
    WorklistQuery(text="pat"),  # every name: more matches than the lowered limit
    WorklistQuery(text="Patient1"),
    WorklistQuery(text="test"),  # every given name
    WorklistQuery(text="pid001"),
    WorklistQuery(text="acc0002"),
    WorklistQuery(text="patient0, te"),
    WorklistQuery(text="pat", modality="MR"),
    WorklistQuery(text="pat", sort="patient_name", descending=False),
    WorklistQuery(text="pat", statuses=("final",), page=2, per_page=5),
    WorklistQuery(priority="STAT", sort="patient_id"),
    WorklistQuery(text="pat", date_from=datetime.date(2026, 11, 3)),
    WorklistQuery(text="ven"),  # studies matched by two or three fields, each counted once
    WorklistQuery(date_from=datetime.date(2026, 11, 3), date_to=datetime.date(2026, 11, 9)),
]

# Studies that one search matches by more than one field.
MATCHED_TWICE = [
    {"patient_name": "Venn^Vera"},
    {"patient_name": "Venn^Vera", "patient_id": "VEN0001"},
    {"patient_name": "Ames^Venus", "accession_number": "VEN00002"},
    {"patient_name": "Venter^Anna", "patient_id": "VEN0003", "accession_number": "VEN00003"},
    {"patient_name": "Ames^Vena", "patient_id": "VEN0004"},
    {"patient_name": "Ames^Anna", "patient_id": "VEN0005", "accession_number": "VEN00005"},
]


def expected_page(studies: list[Study], query: WorklistQuery) -> tuple[list[int], dict]:
    def matches(study: Study) -> bool:
        if query.modality and study.modality != query.modality.upper():
            return False
        if query.priority and study.priority != query.priority:
            return False
        if query.date_from and study.study_date < query.date_from:
            return False
        if query.date_to and study.study_date > query.date_to:
            return False
        if query.text:
            needle = query.text.lower().replace(", ", "^")
            given = study.patient_name.split("^", 1)[-1]
            fields = (study.patient_name, given, study.patient_id, study.accession_number)
            return any(field.lower().startswith(needle) for field in fields)
        return True

    listed = [s for s in studies if s.status in WORKLIST_STATUSES and matches(s)]
    counts: dict[str, int] = {}
    for study in listed:
        counts[study.status] = counts.get(study.status, 0) + 1
    if query.statuses:
        listed = [s for s in listed if s.status in query.statuses]
    # The queries sort by columns of the same name (not study_date, which sorts study_datetime).
    listed.sort(key=lambda s: (getattr(s, query.sort), s.id), reverse=query.descending)
    start = (query.page - 1) * query.per_page
    return [s.id for s in listed[start : start + query.per_page]], counts


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_every_plan_gives_the_rows_and_counts_worked_out_by_hand(
    database_url: str, query: WorklistQuery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.worklist.SORT_LIMIT", 5)
    with open_session(database_url) as session:
        session.add_all(
            make_study(index, status=STATUSES[index % len(STATUSES)]) for index in range(40)
        )
        session.add_all(
            make_study(index, status=STATUSES[index % len(STATUSES)], **fields)
            for index, fields in enumerate(MATCHED_TWICE, start=40)
        )
    with open_session(database_url) as session:
        studies = list(session.query(Study))
        ids, counts = expected_page(studies, query)
        page = query_worklist(session, query, me=None)
        assert [study.id for study in page.items] == ids
        assert page.counts == counts
        assert page.total == sum(
            n for status, n in counts.items() if not query.statuses or status in query.statuses
        )


@pytest.mark.parametrize(
    "database_backend", [pytest.param("postgresql", marks=pytest.mark.requires("initdb"))]
)
def test_postgresql_connections_plan_each_statement_for_its_values(
    database_url: str, tmp_path: Path
) -> None:
    """Never one generic plan for a prepared worklist statement (storage/database.py), in
    the pipeline's engines and the portal's; a site's own `options` in the URL are kept."""
    for url in (database_url, f"{database_url}?options=-c%20work_mem%3D8MB"):
        engine = create_database_engine(url)
        try:
            with engine.connect() as connection:
                mode = connection.execute(text("SHOW plan_cache_mode")).scalar_one()
                memory = connection.execute(text("SHOW work_mem")).scalar_one()
        finally:
            engine.dispose()
        assert mode == "force_custom_plan"
        assert memory == ("8MB" if "work_mem" in url else "4MB")
    settings = load_settings(make_env(tmp_path, PACS_DATABASE_URL=database_url))
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    with app.app_context():
        assert db.session.execute(text("SHOW plan_cache_mode")).scalar_one() == mode
        assert db.engine.pool._pre_ping  # a restarted server costs no request
        db.engine.dispose()
