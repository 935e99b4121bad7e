"""Warehouse refresh and dashboard query times at 1,000,000 studies, on SQLite and PostgreSQL.

Fills a fresh SQLite operational database (temporary PACS_HOME) with the worklist
benchmark's synthetic studies (benchmarks/worklist.py: ~5 years, realistic modality and
priority shares, a few thousand still open) and their report events with realistic
turnaround: received -> final log-normal per priority (STAT ~45 min, URGENT ~5 h,
ROUTINE ~20 h median), opened part-way, a quarter with a preliminary report, addenda on
amended studies, assignments. Generation is not measured. With `--database postgresql` (or
`both`, the default) the same rows are copied (COPY) into a throwaway PostgreSQL server
(tests/support/postgres.py), and every step below runs on each backend. Then it measures:

- the full extract as Arrow (warehouse/extract.py, ADBC) against the row-by-row extract it
  replaced (SQLAlchemy rows -> Python tuples -> Polars, `extract_rows` below), same run;
- a full refresh (extract + build + checks + swap), split in its steps;
- an incremental refresh after 1,000 new studies arrive and 500 waiting ones are signed;
- p50/p95 of every dashboard query (each on a cursor of a shared read-only reader, as a
  portal request does),
  over the default 90-day range and over all five years, unfiltered and filtered.

Goals: Arrow extract >= 3x the row-by-row one, full <= 15 s, incremental <= 2 s, every
dashboard query <= 200 ms.

    .venv/bin/python benchmarks/warehouse.py [--studies 1000000] [--runs 30]
        [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import datetime
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.worklist import RADIOLOGISTS, fill, percentile, stamps  # noqa: E402
from config.settings import Settings, load_settings  # noqa: E402
from core.turnaround import TurnaroundFilters  # noqa: E402
from pacs.db_commands import upgrade_schema  # noqa: E402
from tests.support.services import make_env  # noqa: E402

CHUNK = 200_000
# Median minutes and log-normal sigma of received -> final, per priority.
TURNAROUND = {"STAT": (45, 0.6), "URGENT": (300, 0.8), "ROUTINE": (1200, 1.0)}
EVENT_INSERT = (
    "INSERT INTO study_events (study_id, at, kind, user_email, detail) VALUES (?, ?, ?, ?, ?)"
)


def create_radiologists(settings: Settings) -> list[int]:
    from sqlalchemy.orm import Session

    from storage.database import get_engine
    from storage.models.accounts import User

    now = datetime.datetime.now(datetime.UTC)
    engine = get_engine(settings.database_url)
    with Session(engine) as session, session.begin():
        users = [
            User(
                email=f"rad{number:02d}@example.org",
                display_name=f"Radiologist {number:02d}",
                role="radiologist",
                password_hash="-",
                created_at=now,
            )
            for number in range(1, RADIOLOGISTS + 1)
        ]
        session.add_all(users)
        session.flush()
        ids = [user.id for user in users]
    engine.dispose()
    return ids


def event_rows(
    studies: list[tuple], now: np.datetime64, rng: np.random.Generator, emails: dict[int, str]
) -> list[tuple]:
    """The events of (id, status, priority, received_at, assignee_id) studies, as rows."""
    ids = np.array([s[0] for s in studies])
    status = np.array([s[1] for s in studies])
    priority = np.array([s[2] for s in studies])
    received = np.array([s[3][:19] for s in studies], dtype="datetime64[s]")
    assignee = [s[4] for s in studies]
    n = len(ids)
    median = np.select(
        [priority == p for p in TURNAROUND], [TURNAROUND[p][0] for p in TURNAROUND], 1200
    )
    sigma = np.select(
        [priority == p for p in TURNAROUND], [TURNAROUND[p][1] for p in TURNAROUND], 1.0
    )
    tat = np.maximum(3, median * np.exp(sigma * rng.standard_normal(n)))  # minutes
    seconds = (tat * 60).astype("int64")
    final = np.minimum(received + seconds.astype("timedelta64[s]"), now)
    opened = received + (seconds * rng.uniform(0.1, 0.7, n)).astype("timedelta64[s]")
    started = opened + rng.integers(30, 300, n).astype("timedelta64[s]")
    started = np.minimum(started, final)
    preliminary = started + ((final - started) * rng.uniform(0.3, 0.9, n)).astype("timedelta64[s]")
    addendum = final + rng.integers(3600, 30 * 86_400, n).astype("timedelta64[s]")
    signed = np.isin(status, ["final", "amended", "removed"])
    in_report = signed | np.isin(status, ["in_progress", "preliminary"])
    has_preliminary = (signed & (rng.random(n) < 0.25)) | (status == "preliminary")
    looked = in_report | ((status == "received") & (rng.random(n) < 0.3))
    texts = {
        name: stamps(values)
        for name, values in (
            ("received", received),
            ("opened", opened),
            ("started", started),
            ("preliminary", preliminary),
            ("final", final),
            ("addendum", addendum),
        )
    }
    rows = []
    for i in range(n):
        study = int(ids[i])
        email = emails.get(assignee[i]) or emails[int(rng.integers(1, len(emails) + 1))]
        rows.append((study, texts["received"][i], "received", "", ""))
        if assignee[i]:
            rows.append((study, texts["received"][i], "assigned", email, email))
        if looked[i]:
            rows.append((study, texts["opened"][i], "opened", email, ""))
        if in_report[i]:
            rows.append((study, texts["started"][i], "report_started", email, ""))
        if has_preliminary[i]:
            rows.append((study, texts["preliminary"][i], "preliminary", email, ""))
        if signed[i]:
            rows.append((study, texts["final"][i], "final", email, ""))
        if status[i] == "amended":
            rows.append((study, texts["addendum"][i], "addendum", email, ""))
    return rows


def add_events(database: Path, where: str, seed: int, emails: dict[int, str]) -> int:
    """Insert the events of the studies matching `where`; returns how many."""
    rng = np.random.default_rng(seed)
    now = np.datetime64(datetime.datetime.now(datetime.UTC).replace(tzinfo=None), "s")
    reader = sqlite3.connect(database)
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("PRAGMA synchronous=OFF")
    cursor = reader.execute(
        "SELECT id, status, priority, received_at, assignee_id FROM studies"
        f" WHERE {where} ORDER BY id"
    )
    total = 0
    writer.execute("BEGIN")
    while studies := cursor.fetchmany(CHUNK):
        rows = event_rows(studies, now, rng, emails)
        writer.executemany(EVENT_INSERT, rows)
        total += len(rows)
    writer.execute("COMMIT")
    reader.close()
    writer.close()
    return total


def add_new_studies(
    database: Path, count: int, signed: int, seed: int, emails: dict[int, str]
) -> tuple[int, int]:
    """`count` new studies copied from recent ones (new ids and UIDs, received now), and up
    to `signed` of the waiting studies finalized now; returns (new studies' events, signed)."""
    connection = sqlite3.connect(database, isolation_level=None)
    columns = [row[1] for row in connection.execute("PRAGMA table_info(studies)")]
    first = connection.execute("SELECT max(id) FROM studies").fetchone()[0] + 1
    now = stamps(
        np.array([np.datetime64(datetime.datetime.now(datetime.UTC).replace(tzinfo=None), "s")])
    )[0]
    values = {
        "id": f"id + {first} - (SELECT min(id) FROM recent)",
        "study_instance_uid": "study_instance_uid || '.new'",
        "orthanc_id": "orthanc_id || '-new'",
        "status": "'received'",
        "received_at": f"'{now}'",
        "ingested_at": f"'{now}'",
        "assignee_id": "NULL",
        "removed_at": "NULL",
    }
    connection.execute(
        f"WITH recent AS (SELECT * FROM studies ORDER BY id DESC LIMIT {count})"
        f" INSERT INTO studies ({', '.join(columns)})"
        f" SELECT {', '.join(values.get(c, c) for c in columns)} FROM recent"
    )
    waiting = [
        row[0]
        for row in connection.execute(
            "SELECT id FROM studies WHERE status IN ('in_progress', 'preliminary', 'received')"
            " ORDER BY id LIMIT ?",
            (signed,),
        )
    ]
    connection.execute("BEGIN")
    connection.executemany(
        "UPDATE studies SET status = 'final' WHERE id = ?", [(i,) for i in waiting]
    )
    connection.executemany(
        EVENT_INSERT, [(i, now, "final", emails[1 + i % len(emails)], "") for i in waiting]
    )
    connection.execute("COMMIT")
    connection.close()
    return add_events(database, f"id >= {first}", seed, emails), len(waiting)


def extract_rows(settings: Settings) -> tuple[int, int]:
    """The full extract as it was before Arrow: rows through SQLAlchemy into Python tuples,
    then Polars frames (the baseline of the Arrow extract). Returns the rows read."""
    import polars as pl
    from sqlalchemy import text

    from storage.database import get_engine
    from warehouse import extract

    def read(connection, sql: str, columns: dict, **params) -> pl.DataFrame:
        rows = connection.execute(text(sql), params).fetchall()
        as_read = {
            name: pl.String
            if isinstance(dtype, pl.Datetime) and connection.dialect.name == "sqlite"
            else dtype
            for name, dtype in columns.items()
        }
        frame = pl.DataFrame(rows, schema=as_read, orient="row")
        return frame.with_columns(
            frame[name].str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
            if frame[name].dtype == pl.String and isinstance(dtype, pl.Datetime)
            else extract.cast_column(frame[name], dtype)
            for name, dtype in columns.items()
        )

    with get_engine(settings.database_url).connect() as connection:
        last = connection.execute(text(extract.LAST_EVENT_SQL)).scalar_one()
        studies = read(connection, extract.STUDIES_SQL, extract.STUDY_COLUMNS)
        events = read(
            connection, extract.EVENTS_SQL, extract.EVENT_COLUMNS, event_id=0, last_event=last
        )
        read(connection, extract.USERS_SQL, extract.USER_COLUMNS)
    return studies.height, events.height


def extract_arrow(settings: Settings) -> tuple[int, int]:
    from storage.database import get_engine
    from warehouse.extract import extract_changes

    extract = extract_changes(get_engine(settings.database_url), None)
    return extract.studies.height, extract.events.height


def copy_to_postgresql(database: Path, url: str, tables: dict[str, str]) -> int:
    """COPY the rows of SQLite `tables` matching their WHERE clause into PostgreSQL (its
    times are naive UTC text: the session's zone is UTC); returns the rows copied."""
    import psycopg

    source = sqlite3.connect(database)
    copied = 0
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        for table, where in tables.items():
            columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
            rows = source.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}")
            with connection.transaction(), connection.cursor() as cursor:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    while chunk := rows.fetchmany(CHUNK):
                        for row in chunk:
                            copy.write_row(row)
                        copied += len(chunk)
                cursor.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        connection.execute("ANALYZE")
    source.close()
    return copied


def refresh(settings: Settings, full: bool) -> dict[str, float]:
    """The flow's three tasks, in-process (Prefect's own overhead is not the warehouse's)."""
    from tasks.warehouse import (
        build_warehouse_file,
        extract_operational_changes,
        load_warehouse_marks,
    )
    from warehouse.build import writer_lock

    times = {}
    started = time.perf_counter()
    with writer_lock(settings.warehouse_path):
        marks = None if full else load_warehouse_marks.fn(settings)
        extract = extract_operational_changes.fn(settings, marks)
        extracted = time.perf_counter()
        summary = build_warehouse_file.fn(settings, extract, marks is not None)
    done = time.perf_counter()
    times.update(total=done - started, extract=extracted - started, build=done - extracted)
    print(
        f"{summary.mode} refresh: {times['total']:.2f} s (extract {times['extract']:.2f} s,"
        f" build + checks + swap {times['build']:.2f} s); {summary.studies_extracted:,} studies"
        f" and {summary.events_extracted:,} events read; {summary.studies:,} studies in the"
        f" warehouse ({settings.warehouse_path.stat().st_size / 2**20:,.0f} MiB)",
        flush=True,
    )
    return times


def timed(call: Callable[[], object], runs: int) -> list[float]:
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure_queries(settings: Settings, runs: int) -> list[tuple[str, float, float]]:
    from warehouse import queries

    with queries.open_warehouse(settings.warehouse_path) as con:
        first, last = queries.default_date_range(con)
        radiologist = queries.query_productivity(con, TurnaroundFilters())[0]["radiologist_email"]
    ranges = {
        "90 days": TurnaroundFilters(date_from=first, date_to=last),
        "5 years": TurnaroundFilters(),
        "90 days, CT, STAT": TurnaroundFilters(
            date_from=first, date_to=last, modality="CT", priority="STAT"
        ),
        "5 years, one radiologist, one institution": TurnaroundFilters(
            radiologist=radiologist, institution="North Clinic"
        ),
    }
    dashboard = {
        "p50/p90 by modality per week": lambda con, f: queries.query_turnaround(
            con, f, group_by="modality", period="week"
        ),
        "p50/p90 by priority per day": lambda con, f: queries.query_turnaround(
            con, f, group_by="priority", period="day"
        ),
        "volume per day by modality": queries.query_volume,
        "backlog by age bucket": queries.query_backlog,
        "target breaches (200 rows)": queries.query_breaches,
        "radiologist productivity": queries.query_productivity,
        "API: by institution per month, order->final": lambda con, f: queries.query_turnaround(
            con, f, group_by="institution", period="month", metric="ordered_to_final"
        ),
    }
    reader = queries.WarehouseReader(settings.warehouse_path)  # as the portal keeps one
    results = []
    for range_name, filters in ranges.items():
        for name, query in dashboard.items():

            def request(query=query, filters=filters) -> object:
                with reader.connect() as con:
                    return query(con, filters)

            times = timed(request, runs)
            results.append(
                (f"{name} [{range_name}]", percentile(times, 0.5), percentile(times, 0.95))
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30, help="timed calls per dashboard query")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument(
        "--home", type=Path, help="keep the data here; a second run reuses its SQLite database"
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.database == "both" else [args.database]

    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp, ExitStack() as stack:
        home = args.home or Path(tmp)
        reuse = (home / "pacs.sqlite3").exists()  # before make_env makes a new one
        settings = load_settings(make_env(home, PACS_TIMEZONE="Europe/Paris"))
        database = Path(settings.database_url.removeprefix("sqlite:///"))
        upgrade_schema(settings)  # a reused database of an older schema
        if not reuse:
            radiologists = create_radiologists(settings)
        else:
            radiologists = list(range(1, RADIOLOGISTS + 1))
        emails = {user_id: f"rad{n:02d}@example.org" for n, user_id in enumerate(radiologists, 1)}
        if not reuse:
            started = time.perf_counter()
            fill(database, args.studies, radiologists, args.seed)
            events = add_events(database, "1", args.seed, emails)
            print(
                f"generated {args.studies:,} studies and {events:,} events in"
                f" {time.perf_counter() - started:.0f} s (not measured);"
                f" database {database.stat().st_size / 2**20:,.0f} MiB",
                flush=True,
            )
        sites = {}
        if "sqlite" in backends:
            sites["sqlite"] = settings
        if "postgresql" in backends:
            from tests.support.postgres import start_postgres

            server = start_postgres("pacs")
            stack.callback(server.stop)
            url = server.url("pacs")
            pg_home = home / "postgresql"
            pg_home.mkdir(exist_ok=True)
            sites["postgresql"] = load_settings(
                make_env(pg_home, PACS_TIMEZONE="Europe/Paris", PACS_DATABASE_URL=url)
            )
            upgrade_schema(sites["postgresql"])
            started = time.perf_counter()
            rows = copy_to_postgresql(
                database, url, {"users": "1", "studies": "1", "study_events": "1"}
            )
            print(
                f"copied {rows:,} rows into PostgreSQL in {time.perf_counter() - started:.0f} s"
                " (not measured)",
                flush=True,
            )

        figures: dict[str, dict[str, float]] = {}
        for backend, site in sites.items():
            print(f"\n[{backend}]", flush=True)
            times = {}
            for name, read in (("rows", extract_rows), ("arrow", extract_arrow)):
                read(site)  # warm: the first read also pages the database in
                started = time.perf_counter()
                studies, events = read(site)
                times[name] = time.perf_counter() - started
                print(
                    f"full extract, {name}: {times[name]:.2f} s ({studies:,} studies,"
                    f" {events:,} events)",
                    flush=True,
                )
            figures[backend] = {
                "extract rows": times["rows"],
                "extract arrow": times["arrow"],
                "full": refresh(site, full=True)["total"],
            }

        last_study = sqlite3.connect(database).execute("SELECT max(id) FROM studies").fetchone()[0]
        last_event = (
            sqlite3.connect(database).execute("SELECT max(id) FROM study_events").fetchone()[0]
        )
        new_events, signed = add_new_studies(database, 1000, 500, args.seed + 1, emails)
        print(f"\nadded 1,000 studies ({new_events:,} events) and signed {signed} waiting ones")
        if "postgresql" in sites:
            copy_to_postgresql(
                database,
                sites["postgresql"].database_url,
                {"studies": f"id > {last_study}", "study_events": f"id > {last_event}"},
            )
            signing = (
                "UPDATE studies SET status = 'final' WHERE id IN (SELECT study_id FROM"
                f" study_events WHERE id > {last_event} AND kind = 'final') AND id <= {last_study}"
            )
            import psycopg

            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
                connection.execute(signing)
        for backend, site in sites.items():
            print(f"[{backend}] ", end="")
            figures[backend]["incremental"] = refresh(site, full=False)["total"]

        first = next(iter(sites.values()))
        print("\ndashboard queries (cursor + query + rows as dicts), ms:")
        results = measure_queries(first, args.runs)
        width = max(len(name) for name, _, _ in results)
        for name, p50, p95 in results:
            print(f"  {name:<{width}}  p50 {p50:7.1f}  p95 {p95:7.1f}")
        worst = max(p95 for _, _, p95 in results)

        print(f"\n{'seconds':32}" + "".join(f"{backend:>12}" for backend in figures))
        for row, goal in (
            ("extract rows", "(baseline)"),
            ("extract arrow", ""),
            ("full", "goal <= 15 s"),
            ("incremental", "goal <= 2 s"),
        ):
            cells = "".join(f"{figures[b][row]:12.2f}" for b in figures)
            print(f"  {row:30}{cells}  {goal}")
        ratios = "".join(
            f"{figures[b]['extract rows'] / figures[b]['extract arrow']:11.1f}x" for b in figures
        )
        print(f"  {'arrow speed-up':30}{ratios}  goal >= 3x")
        print(f"slowest dashboard query p95 {worst:.1f} ms (goal 200 ms)")


if __name__ == "__main__":
    main()
