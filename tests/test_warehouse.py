"""The warehouse built from a fixture database: keys, intervals and percentiles against the
hand-computed values of tests/support/turnaround.py, the rules for addenda, re-opened
studies and time zones, incremental refreshes and the atomic swap."""

from __future__ import annotations

import datetime
import sqlite3
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import polars as pl
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from config.settings import Settings, load_settings
from core.turnaround import TurnaroundFilters
from pacs.pipeline import EmbeddedPipeline
from storage.models.orders import Order
from storage.models.studies import Study, StudyEvent
from tests.support.services import run_pacs
from tests.support.turnaround import (
    NOW,
    ONE,
    TWO,
    at,
    build_operational_database,
    fixture_env,
    fixture_settings,
    local,
    make_study,
    refresh,
)
from warehouse import extract
from warehouse.build import (
    MART_KEYS,
    MODEL_KEYS,
    check_keys,
)
from warehouse.queries import (
    WarehouseMissing,
    WarehouseReader,
    open_warehouse,
    query_backlog,
    query_breaches,
    query_order_turnaround,
    query_productivity,
    query_turnaround,
    query_volume,
    read_status,
)
from warehouse.sqlite_arrow import SqliteReadError, read_sqlite_tables


@pytest.fixture
def built(tmp_path: Path, database_url: str) -> tuple[Settings, Engine]:
    settings = fixture_settings(tmp_path, database_url)
    engine = build_operational_database(settings)
    summary = refresh(settings, engine)
    assert summary.mode == "full"
    return settings, engine


def query(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.sql(sql).fetchall()


def by_accession(settings: Settings, columns: str) -> dict[str, tuple]:
    rows = query(settings, f"select accession_number, {columns} from fct_study_turnaround")
    return {row[0]: row[1:] for row in rows}


def test_every_model_has_unique_non_null_keys(built) -> None:
    settings, _ = built
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert check_keys(con) == []
        for model in MODEL_KEYS:
            assert con.sql(f"select count(*) from {model}").fetchall()[0][0] > 0, model


def test_key_checks_find_duplicates_and_nulls() -> None:
    with duckdb.connect() as con:
        for model, keys in MODEL_KEYS.items():
            columns = ", ".join(f"{key}" for key in keys)
            con.execute(f"create table {model} as select 1 as {columns.replace(', ', ', 1 as ')}")
        con.execute("insert into fct_study_turnaround values (1), (null)")
        assert check_keys(con) == [
            "fct_study_turnaround: 1 duplicate keys (study_id)",
            "fct_study_turnaround: 1 rows with a null key (study_id)",
        ]


def test_one_row_per_listed_study_removed_and_quarantined_left_out(built) -> None:
    settings, _ = built
    rows = by_accession(settings, "status")
    assert sorted(rows) == [f"TAT{n:04d}" for n in range(1, 8)]


def test_intervals_in_minutes_match_the_hand_computed_values(built) -> None:
    settings, _ = built
    rows = by_accession(
        settings,
        "received_to_opened_minutes, received_to_preliminary_minutes, received_to_final_minutes,"
        " opened_to_final_minutes, ordered_to_final_minutes, target_breached",
    )
    assert rows["TAT0001"] == (10.0, 20.0, 45.0, 35.0, 75.0, False)
    assert rows["TAT0002"] == (30.0, None, 90.0, 60.0, None, True)
    assert rows["TAT0003"] == (60.0, None, 810.0, 750.0, None, False)
    assert rows["TAT0004"] == (30.0, None, 90.0, 60.0, 360.0, False)
    assert rows["TAT0005"] == (30.0, 60.0, 720.0, 690.0, 840.0, False)  # == target: no breach
    assert rows["TAT0006"] == (30.0, None, None, None, None, None)
    assert rows["TAT0007"] == (None, None, None, None, None, None)


def test_order_and_exam_times_from_the_order_the_mpps_the_study_and_the_images(built) -> None:
    settings, _ = built
    rows = by_accession(
        settings,
        "ordered_at_utc, exam_started_at_utc, exam_ended_at_utc,"
        " ordered_to_exam_minutes, exam_to_final_minutes, ordered_to_final_minutes",
    )
    utc = datetime.datetime
    # MPPS start and end; the order's time (Paris, UTC+1) in UTC.
    assert rows["TAT0001"] == (
        utc(2026, 11, 2, 7, 30),
        utc(2026, 11, 2, 7, 40),
        utc(2026, 11, 2, 7, 55),
        10.0,
        50.0,
        75.0,
    )
    # No order: the exam starts at the Study Time and ends with the last image.
    assert rows["TAT0002"] == (
        None,
        utc(2026, 11, 2, 8, 10),
        utc(2026, 11, 2, 8, 40),
        None,
        110.0,
        None,
    )
    assert rows["TAT0003"] == (None, None, None, None, None, None)
    # An order without MPPS: the images' span, whatever matching wrote on the order.
    assert rows["TAT0004"] == (
        utc(2026, 11, 2, 19, 0),
        utc(2026, 11, 2, 23, 5),
        utc(2026, 11, 2, 23, 20),
        245.0,
        100.0,
        360.0,
    )
    # The order's time over the images' Issue Date/Time; an MPPS that never ended: the last
    # image ends the exam.
    assert rows["TAT0005"] == (
        utc(2026, 11, 3, 6, 0),
        utc(2026, 11, 3, 7, 30),
        utc(2026, 11, 3, 7, 50),
        90.0,
        730.0,
        840.0,
    )


def test_order_turnaround_percentiles_by_modality_priority_and_in_all(built) -> None:
    settings, _ = built
    figures = (
        "ordered_to_exam_count, p50_ordered_to_exam_minutes, p90_ordered_to_exam_minutes,"
        " exam_to_final_count, p50_exam_to_final_minutes, p90_exam_to_final_minutes,"
        " ordered_to_final_count, p50_ordered_to_final_minutes, p90_ordered_to_final_minutes"
    )
    weekly = {
        (dimension, value): [None if figure is None else round(figure, 2) for figure in rest]
        for dimension, value, *rest in query(
            settings,
            f"select dimension, value, {figures} from agg_turnaround_weekly"
            " where week = date '2026-11-02'",
        )
    }
    assert weekly[("all", "all")] == [3, 90.0, 214.0, 4, 105.0, 544.0, 3, 360.0, 744.0]
    ct = [1, 10.0, 10.0, 2, 80.0, 104.0, 1, 75.0, 75.0]
    mr = [2, 167.5, 229.5, 2, 415.0, 667.0, 2, 600.0, 792.0]
    assert (weekly[("modality", "CT")], weekly[("modality", "MR")]) == (ct, mr)
    assert (weekly[("priority", "STAT")], weekly[("priority", "URGENT")]) == (ct, mr)
    with open_warehouse(settings.warehouse_path) as con:
        by_modality = query_order_turnaround(con, TurnaroundFilters(), group_by="modality")
        assert [
            [row[f"{metric}_{figure}"] for metric in METRICS for figure in FIGURES]
            for row in by_modality
        ] == [
            [1, 10.0, 10.0, 2, 80.0, 104.0, 1, 75.0, 75.0],
            [2, 167.5, 229.5, 2, 415.0, 667.0, 2, 600.0, 792.0],
        ]
        assert [row["group_value"] for row in by_modality] == ["CT", "MR"]
        urgent = TurnaroundFilters(priority="URGENT", date_from=datetime.date(2026, 11, 3))
        [row] = query_order_turnaround(con, urgent, group_by="priority")
        assert (row["group_value"], row["exam_to_final_p50_minutes"]) == ("URGENT", 415.0)
        fact = query_turnaround(con, TurnaroundFilters(), period="month", metric="exam_to_final")
        assert [(r["count"], r["p50_minutes"], r["p90_minutes"]) for r in fact] == [
            (4, 105.0, 544.0)
        ]


METRICS = ("ordered_to_exam", "exam_to_final", "ordered_to_final")
FIGURES = ("count", "p50_minutes", "p90_minutes")


def test_an_mpps_or_an_order_changed_later_reaches_an_incremental_refresh(
    built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the orders changed (not their studies): the incremental refresh reads them, and
    gives what a full build gives."""
    settings, engine = built
    monkeypatch.setattr("warehouse.extract.EVENT_ID_LOOKBACK", 0)  # the fixture is smaller
    later = NOW + datetime.timedelta(minutes=5)
    with Session(engine) as session, session.begin():
        mr4 = session.query(Study).filter_by(accession_number="TAT0004").one()
        order = session.query(Order).filter_by(placer_order_number="PO-TAT4").one()
        order.mpps_uid = "1.2.826.0.1.3680043.10.77.904"
        order.exam_started_at, order.exam_ended_at = local(2, 23, 50), local(3, 0, 30)
        order.updated_at = later
        # An order placed for CT-2 turns up and is linked to it.
        ct2 = session.query(Study).filter_by(accession_number="TAT0002").one()
        moved = session.query(Order).filter_by(placer_order_number="PO-TAT20").one()
        moved.study_id, moved.updated_at = ct2.id, later
        assert mr4.id != ct2.id
    summary = refresh(settings, engine, now=later)
    # No study changed: read again are the newest ingested and the removed one, within the
    # margins for late commits.
    assert (summary.mode, summary.studies_extracted) == ("incremental", 2)
    rows = by_accession(
        settings, "ordered_to_exam_minutes, exam_to_final_minutes, ordered_to_final_minutes"
    )
    assert rows["TAT0004"] == (230.0, 90.0, 360.0)  # MPPS 22:50-23:30 UTC
    assert rows["TAT0002"] == (130.0, 110.0, 270.0)  # ordered 07:00 local = 06:00 UTC
    marts = {model: f"select * from {model} order by all" for model in MART_KEYS}
    incremental = {model: query(settings, sql) for model, sql in marts.items()}
    assert refresh(settings, engine, full=True, now=later).mode == "full"
    assert {model: query(settings, sql) for model, sql in marts.items()} == incremental


def test_first_final_counts_addenda_and_reopening_do_not_move_it(built) -> None:
    settings, _ = built
    rows = by_accession(
        settings,
        "final_at_utc, radiologist_email, radiologist_name, addendum_count, reopened_after_final",
    )
    assert rows["TAT0003"] == (
        datetime.datetime(2026, 11, 2, 23, 30),
        ONE,
        "Radiologist One",
        2,
        False,
    )
    assert rows["TAT0005"] == (
        datetime.datetime(2026, 11, 3, 20, 0),
        ONE,
        "Radiologist One",
        0,
        True,
    )


def test_times_signed_in_another_zone_and_local_days(built) -> None:
    settings, _ = built
    rows = by_accession(settings, "final_at_utc, received_date, final_date, ordered_at_utc")
    # Signed at 10:00 in Tokyo = 01:00 UTC; received 23:30 UTC = 00:30 the next day in Paris.
    assert rows["TAT0004"][:3] == (
        datetime.datetime(2026, 11, 3, 1, 0),
        datetime.date(2026, 11, 3),
        datetime.date(2026, 11, 3),
    )
    # Final 23:30 UTC is 00:30 the next day in Paris.
    assert rows["TAT0003"][2] == datetime.date(2026, 11, 3)
    # Ordered 08:30 Paris wall clock = 07:30 UTC.
    assert rows["TAT0001"][3] == datetime.datetime(2026, 11, 2, 7, 30)


def test_percentiles_overall_by_day_modality_and_radiologist(built) -> None:
    settings, _ = built
    daily = query(
        settings,
        "select day, dimension, value, reports_finalized, p50_received_to_final_minutes,"
        " p90_received_to_final_minutes, target_breaches from agg_turnaround_daily"
        " order by all",
    )
    nov2, nov3 = datetime.date(2026, 11, 2), datetime.date(2026, 11, 3)
    assert (nov2, "all", "all", 2, 67.5, 85.5, 1) in daily
    assert (nov3, "all", "all", 3, 720.0, 792.0, 0) in daily
    assert (nov3, "modality", "MR", 2, 405.0, 657.0, 0) in daily
    assert (nov2, "radiologist", TWO, 1, 90.0, 90.0, 1) in daily
    weekly = query(
        settings,
        "select dimension, value, reports_finalized, p50_received_to_final_minutes,"
        " p90_received_to_final_minutes from agg_turnaround_weekly"
        " where week = date '2026-11-02' order by all",
    )
    assert weekly == [
        ("all", "all", 5, 90.0, 774.0),
        ("modality", "CT", 3, 90.0, 666.0),
        ("modality", "MR", 2, 405.0, 657.0),
        ("priority", "ROUTINE", 1, 810.0, 810.0),
        ("priority", "STAT", 2, 67.5, 85.5),
        ("priority", "URGENT", 2, 405.0, 657.0),
        ("radiologist", ONE, 3, 720.0, 792.0),  # [45, 720, 810]: 720 + 0.8 * 90
        ("radiologist", TWO, 2, 90.0, 90.0),
    ]


def test_backlog_holds_unreported_studies_by_age_at_build_time(built) -> None:
    settings, _ = built
    assert query(
        settings,
        "select age_bucket, modality, priority, studies, overdue from agg_backlog order by all",
    ) == [("1-4 d", "CR", "STAT", 1, 1), ("1-4 h", "CT", "ROUTINE", 1, 0)]
    ages = by_accession(settings, "backlog_age_minutes")
    assert (ages["TAT0006"], ages["TAT0007"], ages["TAT0001"]) == ((180.0,), (1500.0,), (None,))


def test_incremental_refresh_reads_only_changes_and_equals_a_full_build(
    built, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, engine = built
    monkeypatch.setattr("warehouse.extract.EVENT_ID_LOOKBACK", 0)  # the fixture is smaller
    with Session(engine) as session, session.begin():
        ct6 = session.query(Study).filter_by(accession_number="TAT0006").one()
        ct6.status = "final"
        session.add(StudyEvent(study_id=ct6.id, kind="final", at=at(6, 11), user_email=TWO))
        new = make_study(10, "US", "URGENT", at(6, 10), status="received")
        session.add(new)
    later = NOW + datetime.timedelta(minutes=5)
    summary = refresh(settings, engine, now=later)
    assert summary.mode == "incremental"
    # The two changed studies, and the removed one: its removal time is the removal mark,
    # which is read again within the margin for late commits.
    assert (summary.studies_extracted, summary.events_extracted) == (3, 1)
    marts = {model: f"select * from {model} order by all" for model in MART_KEYS}
    incremental = {model: query(settings, sql) for model, sql in marts.items()}
    assert by_accession(settings, "received_to_final_minutes")["TAT0006"] == (120.0,)
    assert refresh(settings, engine, full=True, now=later).mode == "full"
    assert {model: query(settings, sql) for model, sql in marts.items()} == incremental


def test_new_targets_rebuild_every_row_on_an_incremental_refresh(built) -> None:
    settings, engine = built
    stricter = replace(settings, tat_targets={**settings.tat_targets, "URGENT": 60})
    assert refresh(stricter, engine).mode == "incremental"
    breached = by_accession(settings, "target_breached")
    assert (breached["TAT0004"], breached["TAT0005"]) == ((True,), (True,))


def test_a_changed_extract_rebuilds_from_a_full_one(built, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release that reads another column gets a full extract, not an incremental merge
    of frames whose columns the raw tables do not have."""
    settings, engine = built
    assert refresh(settings, engine).mode == "incremental"
    columns = {**extract.STUDY_COLUMNS, "patient_sex": pl.String}
    monkeypatch.setattr("warehouse.extract.STUDY_COLUMNS", columns)
    statement = f"SELECT {', '.join(columns)} FROM studies"
    changed = extract.CHANGED_STUDIES_SQL.replace(extract.STUDIES_SQL, statement)
    monkeypatch.setattr("warehouse.extract.STUDIES_SQL", statement)
    monkeypatch.setattr("warehouse.extract.CHANGED_STUDIES_SQL", changed)
    summary = refresh(settings, engine)
    assert (summary.mode, summary.studies_extracted) == ("full", 9)
    assert "patient_sex" in {row[0] for row in query(settings, "describe raw_studies")}
    assert refresh(settings, engine).mode == "incremental"


def test_sqlite_statements_read_side_by_side_come_back_in_order(tmp_path: Path) -> None:
    """More statements than cores: each child reads its share, the results keep the order
    of the statements, and the text times become timestamps (fractions or not, NULL kept)."""
    database = tmp_path / "read.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (n INTEGER, at TEXT)")
        connection.executemany(
            "INSERT INTO t VALUES (?, ?)",
            [(1, "2026-01-02 03:04:05.250000"), (2, "2026-01-02 03:04:05"), (3, None)],
        )
    statements = [("SELECT n, at FROM t WHERE n >= ?1 ORDER BY n", [n]) for n in (1, 2, 3, 2, 1)]
    tables = read_sqlite_tables(str(database), statements)
    assert [table["n"].to_pylist() for table in tables] == [
        [1, 2, 3],
        [2, 3],
        [3],
        [2, 3],
        [1, 2, 3],
    ]
    frame = extract.as_frame(tables[0], {"n": pl.Int64, "at": pl.Datetime("us")})
    assert frame["at"].to_list() == [
        datetime.datetime(2026, 1, 2, 3, 4, 5, 250000),
        datetime.datetime(2026, 1, 2, 3, 4, 5),
        None,
    ]


def test_a_failed_sqlite_read_says_why_and_leaves_no_child(tmp_path: Path) -> None:
    """The first child fails at once; the second, counting to a hundred million, is
    killed rather than left to run."""
    database = tmp_path / "read.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (n INTEGER)")
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000)"
        " SELECT count(*) FROM c"
    )
    statements = [("SELECT n FROM missing", []), (slow, [])]
    with pytest.raises(SqliteReadError, match="no such table: missing"):
        read_sqlite_tables(str(database), statements)
    children = subprocess.run(
        ["pgrep", "-f", f"warehouse.sqlite_arrow {database}"], capture_output=True
    )
    assert children.stdout == b""


def test_readers_keep_the_old_file_while_a_refresh_swaps_in_the_new(built) -> None:
    settings, engine = built
    shared = WarehouseReader(settings.warehouse_path)
    count = "select count(*) from fct_study_turnaround"
    reader = shared.connect()
    try:
        with Session(engine) as session, session.begin():
            session.add(make_study(11, "CT", "STAT", at(6, 11), status="received"))
        refresh(settings, engine)
        assert reader.sql(count).fetchall() == [(7,)]
        with shared.connect() as fresh:  # the shared reader attaches the new file
            assert fresh.sql(count).fetchall() == [(8,)]
    finally:
        reader.close()
    assert query(settings, "select count(*) from fct_study_turnaround") == [(8,)]
    leftovers = [p.name for p in settings.warehouse_path.parent.iterdir() if "building" in p.name]
    assert leftovers == []


@pytest.mark.slow
def test_pacs_warehouse_refresh_runs_the_flow(tmp_path: Path, prefect_api: str) -> None:
    env = fixture_env(tmp_path)
    settings = load_settings(env)
    build_operational_database(settings)
    first = run_pacs(env, "warehouse", "refresh")
    assert first.returncode == 0, first.stderr
    assert "warehouse: full refresh" in first.stdout
    assert "7 studies in" in first.stdout
    again = run_pacs(env, "warehouse", "refresh")
    assert again.returncode == 0, again.stderr
    assert "warehouse: incremental refresh" in again.stdout
    assert query(settings, "select count(*) from fct_study_turnaround") == [(7,)]
    full = run_pacs(env, "warehouse", "refresh", "--full")
    assert "warehouse: full refresh" in full.stdout


@pytest.mark.slow
def test_pacs_warehouse_refresh_refuses_a_bad_time_zone(tmp_path: Path) -> None:
    result = run_pacs(
        {**fixture_env(tmp_path), "PACS_TIMEZONE": "Mars/Olympus"}, "warehouse", "refresh"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "pacs: PACS_TIMEZONE='Mars/Olympus' is not an IANA time zone (e.g. Europe/Paris, UTC)"
    ]


def test_dashboard_queries_give_the_hand_computed_figures(built) -> None:
    settings, _ = built
    with open_warehouse(settings.warehouse_path) as con:
        everything = TurnaroundFilters()
        week = datetime.date(2026, 11, 2)
        assert query_turnaround(con, everything, group_by="modality", period="week") == [
            {
                "period": week,
                "group_value": "CT",
                "count": 3,
                "p50_minutes": 90.0,
                "p90_minutes": 666.0,
            },
            {
                "period": week,
                "group_value": "MR",
                "count": 2,
                "p50_minutes": 405.0,
                "p90_minutes": 657.0,
            },
        ]
        nov3 = TurnaroundFilters(date_from=datetime.date(2026, 11, 3))
        assert query_turnaround(con, nov3, period="day") == [
            {
                "period": datetime.date(2026, 11, 3),
                "group_value": "all",
                "count": 3,
                "p50_minutes": 720.0,
                "p90_minutes": 792.0,
            }
        ]
        by_two = TurnaroundFilters(radiologist=TWO.upper(), priority="STAT")
        assert [r["count"] for r in query_turnaround(con, by_two, period="month")] == [1]
        opened = query_turnaround(con, everything, period="month", metric="received_to_opened")
        assert opened[0]["count"] == 5 and opened[0]["p50_minutes"] == 30.0
        assert query_volume(con, TurnaroundFilters(modality="CT")) == [
            {"day": datetime.date(2026, 11, 2), "modality": "CT", "studies": 3},
            {"day": datetime.date(2026, 11, 6), "modality": "CT", "studies": 1},
        ]
        assert query_backlog(con, everything) == [
            {
                "position": 1,
                "age_bucket": "1-4 h",
                "priority": "ROUTINE",
                "studies": 1,
                "overdue": 0,
            },
            {"position": 4, "age_bucket": "1-4 d", "priority": "STAT", "studies": 1, "overdue": 1},
        ]
        breaches = query_breaches(con, everything)
        assert [(b["accession_number"], b["received_to_final_minutes"]) for b in breaches] == [
            ("TAT0002", 90.0)
        ]
        assert query_productivity(con, everything) == [
            {
                "radiologist_email": ONE,
                "radiologist_name": "Radiologist One",
                "reports_finalized": 3,
                "median_minutes": 720.0,
            },
            {
                "radiologist_email": TWO,
                "radiologist_name": "Radiologist Two",
                "reports_finalized": 2,
                "median_minutes": 90.0,
            },
        ]
        assert read_status(con)["timezone"] == "Europe/Paris"


def test_the_daily_and_weekly_marts_answer_as_the_fact_table_would(built) -> None:
    settings, _ = built
    ranges = [
        TurnaroundFilters(),
        TurnaroundFilters(date_from=datetime.date(2026, 11, 3)),
        TurnaroundFilters(date_from=datetime.date(2026, 11, 2), date_to=datetime.date(2026, 11, 8)),
    ]
    with open_warehouse(settings.warehouse_path) as con:
        for filters in ranges:
            for group_by in (None, "modality", "priority", "radiologist"):
                for period in ("day", "week"):
                    fact = query_turnaround(
                        con, filters, group_by=group_by, period=period, use_aggregates=False
                    )
                    marts = query_turnaround(con, filters, group_by=group_by, period=period)
                    assert marts == fact, (filters, group_by, period)


def test_no_warehouse_yet_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseMissing, match="run `pacs warehouse refresh`"):
        open_warehouse(tmp_path / "missing.duckdb")


@pytest.mark.slow
def test_pacs_up_refreshes_the_warehouse_at_start_and_then_periodically(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = threading.Semaphore(0)

    def refresh_warehouse() -> None:
        runs.release()

    monkeypatch.setattr("flows.refresh_warehouse.refresh_warehouse", refresh_warehouse)
    pipeline = EmbeddedPipeline(refresh_every=3600)
    pipeline.refresher.start()  # the warehouse thread alone (the other one reconciles)
    assert runs.acquire(timeout=30), "no refresh at start"
    pipeline.stopping.set()
    pipeline.refresher.join(timeout=10)
    assert not pipeline.refresher.is_alive(), "the refresher did not stop when asked"
    assert not runs.acquire(timeout=0), "refreshed again before its interval"


def test_requested_refreshes_run_soon_and_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of changes (an ingest batch, a signature...) makes one refresh within seconds,
    not one each, and never waits for the schedule."""
    runs = threading.Semaphore(0)

    def refresh_warehouse() -> None:
        runs.release()

    monkeypatch.setattr("flows.refresh_warehouse.refresh_warehouse", refresh_warehouse)
    pipeline = EmbeddedPipeline(refresh_every=3600)
    pipeline.refresher.start()
    try:
        assert runs.acquire(timeout=30), "no refresh at start"
        for _ in range(5):
            pipeline.request_refresh()
            time.sleep(0.1)
        started = time.monotonic()
        assert runs.acquire(timeout=10), "a requested refresh did not run"
        assert time.monotonic() - started < 7  # quiet 1 s, at most 5 s after the first
        assert not runs.acquire(timeout=2), "five requests made more than one refresh"
    finally:
        pipeline.stop()
    assert not pipeline.refresher.is_alive()
