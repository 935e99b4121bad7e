"""Worklist latency at scale: the studies API and page over 1,000,000 studies.

Fills a fresh SQLite database (temporary PACS_HOME) with synthetic studies by bulk
insert: mostly final studies over ~5 years, a few thousand received / in progress /
preliminary ones among the most recent, CT/MR/CR/DX/US/MG in realistic shares,
~5 % STAT and ~15 % URGENT, reported studies assigned to a dozen radiologists.

Then, in the same run, it measures server-side (Flask test client, no network):

- each typical filter/sort combination (a short name prefix among them) through
  `GET /api/v1/studies` (bearer token),
- the same combination as a bare `query_worklist` call (one session per call),
- the `/worklist` HTML page (signed in through the form, CSRF token and all),

first with the indexes the schema had before the worklist indexes (the baseline: the
same queries, today's storage/worklist.py, on the old indexes), then after creating the
indexes `Study.__table_args__` declares now. Prints p50/p95 in ms per combination and
pass, the baseline/indexed ratio of the p95s, and the SQL statements an API call runs.
No ANALYZE is run: a database made by the migrations has no planner statistics either.

With `--database postgresql` the same studies go by COPY into a throwaway PostgreSQL server
(tests/support/postgres.py) at this release's schema; the baseline pass runs without the
name-search indexes of revision 0006 (`lower(...) COLLATE "C"`), the second with them. Both
after VACUUM ANALYZE, as autovacuum would have run on a site that reached a million studies
(statistics for the planner, the visibility map for index-only scans).

    .venv/bin/python benchmarks/worklist.py [--studies 1000000] [--runs 50]
        [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import datetime
import queue
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from config.settings import load_settings  # noqa: E402
from tests.support.services import make_env  # noqa: E402

PASSWORD = "a-long-enough-passphrase"
RADIOLOGISTS = 12
CHUNK = 50_000
YEARS = 5

# The studies indexes as they were before the worklist indexes: the column-level
# `index=True` ones and the two original composites. The baseline pass runs on these.
BASELINE_INDEXES = {
    "ix_studies_status": "CREATE INDEX ix_studies_status ON studies (status)",
    "ix_studies_patient_id": "CREATE INDEX ix_studies_patient_id ON studies (patient_id)",
    "ix_studies_accession_number": (
        "CREATE INDEX ix_studies_accession_number ON studies (accession_number)"
    ),
    "ix_studies_assignee_id": "CREATE INDEX ix_studies_assignee_id ON studies (assignee_id)",
    "ix_studies_status_received": (
        "CREATE INDEX ix_studies_status_received ON studies (status, received_at)"
    ),
    "ix_studies_modality_received": (
        "CREATE INDEX ix_studies_modality_received ON studies (modality, received_at)"
    ),
}

# Share of each modality in a general hospital's volume, with descriptions and body parts.
MODALITIES = {
    "CR": (0.20, ["XR CHEST PA/LAT", "XR HAND 2V", "XR KNEE 3V", "XR PELVIS AP"]),
    "DX": (0.25, ["XR CHEST PA", "XR SPINE LUMBAR", "XR FOOT 3V", "XR SHOULDER 2V"]),
    "CT": (0.20, ["CT HEAD W/O CONTRAST", "CT CHEST W CONTRAST", "CT ABDOMEN PELVIS", "CTA NECK"]),
    "MR": (0.12, ["MR BRAIN W/WO", "MR KNEE RIGHT", "MR LUMBAR SPINE", "MR PROSTATE"]),
    "US": (0.15, ["US ABDOMEN COMPLETE", "US THYROID", "US CAROTID DOPPLER", "US PELVIS"]),
    "MG": (0.08, ["MG SCREENING BILATERAL", "MG DIAGNOSTIC LEFT", "MG TOMOSYNTHESIS"]),
}
BODY_PARTS = {
    "CR": ["CHEST", "HAND", "KNEE", "PELVIS"],
    "DX": ["CHEST", "LSPINE", "FOOT", "SHOULDER"],
    "CT": ["HEAD", "CHEST", "ABDOMEN", "NECK"],
    "MR": ["BRAIN", "KNEE", "LSPINE", "PROSTATE"],
    "US": ["ABDOMEN", "THYROID", "NECK", "PELVIS"],
    "MG": ["BREAST", "BREAST", "BREAST"],
}
IMAGES = {
    "CR": (2, 4),
    "DX": (1, 3),
    "CT": (150, 1500),
    "MR": (200, 1200),
    "US": (10, 80),
    "MG": (4, 8),
}
# fmt: off
SYLLABLES = ["ber", "man", "son", "mil", "ler", "schu", "wal", "ko", "ska", "ran", "dal", "fer",
             "gon", "hal", "is", "jan", "kel", "lin", "mor", "nov", "ol", "pet", "quin", "ros",
             "sal", "tor", "ul", "ven", "wik", "zan"]
GIVEN = ["Anna", "Ben", "Carla", "David", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Karin", "Liam", "Mia", "Noah", "Olga", "Paul", "Rosa", "Samir", "Tara", "Ugo", "Vera",
         "Wei", "Yara", "Zoe", "Amir", "Lena", "Marco", "Nina", "Omar", "Petra", "Ravi", "Sofia"]
# fmt: on
REFERRERS = ["Dr^House", "Dr^Grey", "Dr^Kildare", "Dr^Quinn", "Dr^Zhivago", "Dr^Watson"]
INSTITUTIONS = ["General Hospital", "North Clinic", "Imaging Center West"]


@dataclass(frozen=True)
class Combination:
    name: str
    query: str  # the API's query string; the page and `query_worklist` read the same one


def stamps(moments: np.ndarray) -> list[str]:
    """datetime64[s] -> SQLAlchemy's SQLite DATETIME text ("YYYY-MM-DD HH:MM:SS.ffffff")."""
    text = np.datetime_as_string(moments, unit="s")
    return np.strings.add(np.strings.replace(text, "T", " "), ".000000").tolist()


def make_patients(rng: np.random.Generator, count: int) -> tuple[np.ndarray, ...]:
    """`count` patients: names "Family^Given", unique IDs "M1234567", birth dates, sexes."""
    families = sorted(
        {
            "".join(rng.choice(SYLLABLES, size=rng.choice((2, 2, 3)), replace=False)).capitalize()
            for _ in range(20_000)
        }
    )
    names = np.strings.add(
        np.strings.add(rng.choice(families, size=count), "^"), rng.choice(GIVEN, size=count)
    )
    ids = np.strings.add(
        "M", np.strings.zfill(rng.choice(10_000_000, size=count, replace=False).astype(str), 7)
    )
    births = np.datetime64("1930-01-01") + rng.integers(0, 365 * 90, size=count)
    sexes = rng.choice(["M", "F"], size=count)
    return (
        names.astype(object),
        ids.astype(object),
        np.datetime_as_string(births).astype(object),
        sexes.astype(object),
    )


def study_rows(
    count: int, radiologist_ids: list[int], now: datetime.datetime, seed: int
) -> Iterator[list[tuple]]:
    """Chunks of row tuples in STUDY_COLUMNS order, oldest study first (ids follow arrival)."""
    rng = np.random.default_rng(seed)
    patients = make_patients(rng, max(1, count * 2 // 5))
    end = np.datetime64(now.replace(tzinfo=None), "s")
    span = 365 * YEARS * 86_400
    # The most recent studies are still being read; a few old ones were forgotten.
    open_window = min(count, 6_000)
    stragglers = rng.choice(
        max(1, count - open_window), size=min(300, count - open_window), replace=False
    )
    names = list(MODALITIES)
    shares = np.array([MODALITIES[m][0] for m in names])
    radiologists = np.array(radiologist_ids)
    for first in range(0, count, CHUNK):
        index = np.arange(first, min(count, first + CHUNK))
        n = len(index)
        received = end - span + (span * (index + rng.random(n)) / count).astype("timedelta64[s]")
        local = (
            received + np.timedelta64(3600, "s") - rng.integers(5, 120, n) * np.timedelta64(60, "s")
        )
        ordered = local - rng.integers(1, 72, n) * np.timedelta64(3600, "s")
        modality = np.array(names)[rng.choice(len(names), size=n, p=shares / shares.sum())]
        is_open = (index >= count - open_window) | np.isin(index, stragglers)
        roll = rng.random(n)
        status = np.where(
            is_open,
            np.select(
                [roll < 0.5, roll < 0.58, roll < 0.78, roll < 0.8],
                ["received", "in_progress", "preliminary", "quarantined"],
                "final",
            ),
            np.select([roll < 0.985, roll < 0.995], ["final", "amended"], "removed"),
        )
        assigned = rng.random(n)
        reported = np.isin(status, ["final", "amended", "preliminary"]) & (assigned < 0.9)
        taken = (status == "in_progress") | ((status == "received") & (assigned < 0.15))
        assignee = np.where(reported | taken, rng.choice(radiologists, size=n), 0).tolist()
        roll = rng.random(n)
        priority = np.select([roll < 0.05, roll < 0.20], ["STAT", "URGENT"], "ROUTINE")
        who = (len(patients[0]) * rng.random(n) ** 1.3).astype(int)
        description = np.empty(n, dtype=object)
        body_part = np.empty(n, dtype=object)
        series = rng.integers(2, 13, n)
        images = np.empty(n, dtype=int)
        for name in names:
            mask = modality == name
            k = int(mask.sum())
            which = rng.integers(0, len(BODY_PARTS[name]), size=k)
            description[mask] = np.array(MODALITIES[name][1])[which]
            body_part[mask] = np.array(BODY_PARTS[name])[which]
            images[mask] = rng.integers(*IMAGES[name], size=k, endpoint=True)
            if name in ("CR", "DX", "MG"):
                series[mask] = rng.integers(1, 4, k)
        removed = status == "removed"
        removed_at = stamps(received + np.timedelta64(30 * 86_400, "s"))
        orthanc = rng.bytes(20 * n).hex()
        ids = index + 1
        columns = [
            ids.tolist(),
            [f"1.2.826.0.1.3680043.10.543.{i}" for i in ids.tolist()],
            [orthanc[40 * i : 40 * i + 40] for i in range(n)],
            status.tolist(),
            patients[0][who].tolist(),
            patients[1][who].tolist(),
            patients[2][who].tolist(),
            patients[3][who].tolist(),
            [f"ACC{i:08d}" for i in ids.tolist()],
            np.datetime_as_string(local.astype("datetime64[D]")).tolist(),
            stamps(local),
            modality.tolist(),
            np.where(rng.random(n) < 0.95, modality, np.strings.add(modality, "\\SR")).tolist(),
            description.tolist(),
            body_part.tolist(),
            rng.choice(REFERRERS, size=n).tolist(),
            rng.choice(INSTITUTIONS, size=n).tolist(),
            priority.tolist(),
            stamps(ordered),
            stamps(received),
            stamps(received + np.timedelta64(30, "s")),
            [
                stamp if gone else None
                for stamp, gone in zip(removed_at, removed.tolist(), strict=True)
            ],
            series.tolist(),
            images.tolist(),
            ["[]"] * n,
            [a or None for a in assignee],
            [""] * n,
            ["{}"] * n,
            stamps(local),  # the first image at the study's time, the last a few minutes on
            stamps(local + rng.integers(1, 30, n) * np.timedelta64(60, "s")),
        ]
        yield list(zip(*columns, strict=True))


STUDY_COLUMNS = (
    "id",
    "study_instance_uid",
    "orthanc_id",
    "status",
    "patient_name",
    "patient_id",
    "patient_birth_date",
    "patient_sex",
    "accession_number",
    "study_date",
    "study_datetime",
    "modality",
    "modalities",
    "description",
    "body_part",
    "referring_physician",
    "institution",
    "priority",
    "ordered_at",
    "received_at",
    "ingested_at",
    "removed_at",
    "series_count",
    "instance_count",
    "warnings",
    "assignee_id",
    "issuer_of_patient_id",
    "identity_acknowledged",
    "first_instance_at",
    "last_instance_at",
)


STUDIES_INDEXES = (
    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'studies'"
    " AND sql IS NOT NULL"
)


def studies_indexes(connection: sqlite3.Connection) -> set[str]:
    return {name for (name,) in connection.execute(STUDIES_INDEXES)}


def fill(path: Path, count: int, radiologist_ids: list[int], seed: int) -> tuple[float, float]:
    """Bulk insert `count` studies (indexes dropped first), then the baseline indexes.

    One transaction of `executemany` chunks on a connection of its own, journal off (nothing
    else is connected); a thread makes the next chunk while SQLite writes the last one.
    Returns the seconds spent inserting and building the baseline indexes."""
    from storage.models.studies import Study

    assert set(STUDY_COLUMNS) == {c.name for c in Study.__table__.columns}, "schema changed"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-1000000")  # 1 GB: the random orthanc_id keys
    for name in studies_indexes(connection):
        connection.execute(f"DROP INDEX {name}")
    insert = (
        f"INSERT INTO studies ({', '.join(STUDY_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(STUDY_COLUMNS))})"
    )
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    chunks: queue.Queue[list[tuple] | None] = queue.Queue(maxsize=2)

    def produce() -> None:
        for chunk in study_rows(count, radiologist_ids, now, seed):
            chunks.put(chunk)
        chunks.put(None)

    started = time.perf_counter()
    threading.Thread(target=produce, daemon=True).start()
    connection.execute("BEGIN")
    while (chunk := chunks.get()) is not None:
        connection.executemany(insert, chunk)
    connection.execute("COMMIT")
    inserted = time.perf_counter()
    for sql in BASELINE_INDEXES.values():
        connection.execute(sql)
    indexed = time.perf_counter()
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    return inserted - started, indexed - inserted


# Revision 0006's indexes: the PostgreSQL pass measures without them first.
SEARCH_INDEXES = (
    "ix_studies_patient_name_lower",
    "ix_studies_given_name_lower",
    "ix_studies_patient_id_lower",
    "ix_studies_accession_lower",
)


def postgres_index_definitions(connection) -> dict[str, str]:
    """The studies indexes of their own (none behind a constraint), name -> CREATE INDEX."""
    rows = connection.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relname = 'studies'"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
    )
    return dict(rows.fetchall())


def fill_postgresql(
    url: str, count: int, radiologist_ids: list[int], seed: int
) -> tuple[float, float, float, dict[str, str]]:
    """COPY the studies with their indexes dropped, then every index but revision 0006's,
    then VACUUM ANALYZE. Returns the seconds of the three steps and the definitions dropped."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("SET TIME ZONE 'UTC'")  # the rows' times are naive UTC text
        indexes = postgres_index_definitions(connection)
        for name in indexes:
            connection.execute(f"DROP INDEX {name}")
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        started = time.perf_counter()
        with connection.transaction(), connection.cursor() as cursor:
            with cursor.copy(f"COPY studies ({', '.join(STUDY_COLUMNS)}) FROM STDIN") as copy:
                for chunk in study_rows(count, radiologist_ids, now, seed):
                    for row in chunk:
                        copy.write_row(row)
            cursor.execute("SELECT setval('studies_id_seq', (SELECT max(id) FROM studies))")
        copied = time.perf_counter()
        for name, definition in indexes.items():
            if name not in SEARCH_INDEXES:
                connection.execute(definition)
        indexed = time.perf_counter()
        connection.execute("VACUUM ANALYZE")
        return copied - started, indexed - copied, time.perf_counter() - indexed, indexes


def add_search_indexes_postgresql(url: str, definitions: dict[str, str]) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        for name in SEARCH_INDEXES:
            connection.execute(definitions[name])
        connection.execute("ANALYZE studies")
    return time.perf_counter() - started


def add_schema_indexes(path: Path) -> tuple[list[str], list[str], float]:
    """Bring the studies indexes to what `Study.__table__` declares: (created, dropped, s)."""
    from sqlalchemy import create_engine
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex

    from storage.models.studies import Study

    # What SQLite gets of them (some are PostgreSQL's alone): as a new table shows it.
    fresh = create_engine("sqlite://")
    Study.__table__.create(fresh)
    with fresh.connect() as probe:
        on_sqlite = set(probe.exec_driver_sql(STUDIES_INDEXES).scalars())
    fresh.dispose()
    declared = {index.name: index for index in Study.__table__.indexes if index.name in on_sqlite}
    connection = sqlite3.connect(path, isolation_level=None)
    present = studies_indexes(connection)
    started = time.perf_counter()
    dropped = sorted(present - set(declared))
    for name in dropped:
        connection.execute(f"DROP INDEX {name}")
    created = sorted(set(declared) - present)
    for name in created:
        connection.execute(str(CreateIndex(declared[name]).compile(dialect=sqlite.dialect())))
    seconds = time.perf_counter() - started
    # The new index pages went through the WAL: into the database file with them, as a
    # long-running database would have them, not in a WAL every read then looks through.
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return created, dropped, seconds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(call: Callable[[], object], runs: int, budget: float) -> list[float]:
    """Milliseconds of `runs` calls after one warm-up; fewer once `budget` seconds are spent
    (the slow baseline), but at least two."""
    call()
    times: list[float] = []
    spent = 0.0
    while len(times) < runs and (len(times) < 2 or spent < budget):
        started = time.perf_counter()
        call()
        elapsed = time.perf_counter() - started
        times.append(elapsed * 1000)
        spent += elapsed
    return times


def csrf_token_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def combinations(url: str) -> list[Combination]:
    """The typical worklist requests, with values taken from the data."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        last_day = connection.execute(text("SELECT max(study_date) FROM studies")).scalar_one()
        count = connection.execute(text("SELECT max(id) FROM studies")).scalar_one()
        patient_id, accession, name = connection.execute(
            text("SELECT patient_id, accession_number, patient_name FROM studies WHERE id = :id"),
            {"id": max(1, count * 7 // 9)},
        ).one()
    engine.dispose()
    if isinstance(last_day, str):  # SQLite
        last_day = datetime.date.fromisoformat(last_day)
    family, given = name.split("^")
    week = last_day - datetime.timedelta(days=6)
    return [
        Combination("default (all statuses, received desc)", ""),
        Combination("status=received, sort=priority", "status=received&sort=priority&order=asc"),
        Combination("modality=CT, status=received", "modality=CT&status=received"),
        Combination("assignee=me", "assignee=me"),
        Combination("assignee=unassigned, status=received", "assignee=unassigned&status=received"),
        Combination(f"q=patient ID prefix {patient_id[:6]}", f"q={patient_id[:6]}"),
        Combination(f"q=accession {accession}", f"q={accession}"),
        Combination(f"q=name {family.lower()}, {given[:2]}", f"q={family.lower()},+{given[:2]}"),
        Combination(f"one week {week}..{last_day}", f"from={week}&to={last_day}"),
        Combination("sort=patient_name asc, page 50", "sort=patient_name&order=asc&page=50"),
        Combination("priority=STAT, status=received", "priority=STAT&status=received"),
        # A short name prefix: tens of thousands of matches to count (storage/worklist.py).
        Combination(f"q=3-letter prefix {family[:3]}", f"q={family[:3]}"),
    ]


@dataclass
class Figures:
    api: dict[str, list[float]]
    query: dict[str, list[float]]
    page: list[float]


def measure(app, me_email: str, combos: list[Combination], runs: int, budget: float) -> Figures:
    """Times every combination through the API and as a bare `query_worklist` call, and the
    signed-in `/worklist` page."""
    from sqlalchemy import event, select
    from sqlalchemy.orm import Session
    from werkzeug.datastructures import MultiDict

    from portal.extensions import db
    from portal.worklist import parse_worklist_args
    from storage.models.accounts import User
    from storage.worklist import query_worklist

    client = app.test_client()
    response = client.post("/api/v1/auth/token", json={"email": me_email, "password": PASSWORD})
    assert response.status_code == 201, response.json
    headers = {"Authorization": f"Bearer {response.json['token']}"}
    figures = Figures(api={}, query={}, page=[])
    with app.app_context():
        engine = db.engine
        with Session(engine) as session:
            me = session.scalar(select(User).where(User.email == me_email))
    statements = [0]
    sql_seconds = [0.0]

    def start(connection, *args) -> None:
        statements[0] += 1
        connection.info["started"] = time.perf_counter()

    def stop(connection, *args) -> None:
        sql_seconds[0] += time.perf_counter() - connection.info.pop("started")

    event.listen(engine, "before_cursor_execute", start)
    event.listen(engine, "after_cursor_execute", stop)
    for combo in combos:
        url = f"/api/v1/studies?{combo.query}"

        def call_api(url: str = url) -> None:
            response = client.get(url, headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)

        query = parse_worklist_args(MultiDict(parse_qsl(combo.query)))

        def call_query(query=query) -> None:
            with Session(engine) as session:
                query_worklist(session, query, me=me)

        statements[0], sql_seconds[0] = 0, 0.0
        figures.api[combo.name] = timed(call_api, runs, budget)
        per_call = statements[0] / (len(figures.api[combo.name]) + 1)
        sql_ms = sql_seconds[0] * 1000 / (len(figures.api[combo.name]) + 1)
        figures.query[combo.name] = timed(call_query, runs, budget)
        print(
            f"  {combo.name:44} api p95 {percentile(figures.api[combo.name], 0.95):8.1f} ms"
            f" ({per_call:.0f} SQL statements, {sql_ms:.1f} ms, a call)"
            f"  query p95 {percentile(figures.query[combo.name], 0.95):8.1f} ms",
            flush=True,
        )
    browser = app.test_client()
    token = csrf_token_of(browser.get("/login").get_data(as_text=True))
    signed_in = browser.post(
        "/login", data={"email": me_email, "password": PASSWORD, "csrf_token": token}
    )
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)

    def call_page() -> None:
        response = browser.get("/worklist")
        assert response.status_code == 200 and b"worklist" in response.data

    figures.page = timed(call_page, runs, budget)
    event.remove(engine, "before_cursor_execute", start)
    event.remove(engine, "after_cursor_execute", stop)
    print(f"  {'/worklist HTML page':44} p95 {percentile(figures.page, 0.95):8.1f} ms")
    return figures


def report(combos: list[Combination], before: Figures, after: Figures) -> None:
    def cell(times: list[float]) -> str:
        return f"{percentile(times, 0.5):8.1f} {percentile(times, 0.95):8.1f}"

    def ratio(old: list[float], new: list[float]) -> str:
        return f"{percentile(old, 0.95) / percentile(new, 0.95):7.0f}x"

    print()
    print(f"{'':46}{'baseline (ms)':>18}{'indexed (ms)':>18}")
    print(f"{'combination':46}{'p50':>9}{'p95':>9}{'p50':>9}{'p95':>9}{'p95 ratio':>10}  n")
    for title, pick in (("API GET /api/v1/studies", "api"), ("query_worklist", "query")):
        print(title)
        for combo in combos:
            old, new = getattr(before, pick)[combo.name], getattr(after, pick)[combo.name]
            print(
                f"  {combo.name:44}{cell(old)}{cell(new)}{ratio(old, new)}  {len(old)}/{len(new)}"
            )
    print("HTML page")
    print(
        f"  {'GET /worklist (signed in)':44}{cell(before.page)}{cell(after.page)}"
        f"{ratio(before.page, after.page)}  {len(before.page)}/{len(after.page)}"
    )
    worst = max(percentile(after.api[combo.name], 0.95) for combo in combos)
    print(f"\nslowest API p95 with the indexes: {worst:.1f} ms (goal <= 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50, help="timed calls per combination")
    parser.add_argument(
        "--baseline-runs", type=int, default=5, help="timed calls per combination, baseline"
    )
    parser.add_argument(
        "--budget", type=float, default=5.0, help="seconds per combination before stopping early"
    )
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp, ExitStack() as stack:
        home = Path(tmp)
        overrides = {}
        if args.database == "postgresql":
            from storage.database import create_database_engine
            from storage.schema import upgrade_database
            from tests.support.postgres import start_postgres

            server = start_postgres("pacs")
            stack.callback(server.stop)
            overrides["PACS_DATABASE_URL"] = server.url("pacs")
            engine = create_database_engine(server.url("pacs"))
            upgrade_database(engine)
            engine.dispose()
        settings = load_settings(make_env(home, **overrides))
        database = Path(settings.database_url.removeprefix("sqlite:///"))

        import storage.accounts
        from core.accounts import Role, hash_password
        from portal import create_app
        from portal.extensions import db
        from storage.accounts import create_user

        hashed = hash_password(PASSWORD)  # one bcrypt hash for every user
        storage.accounts.hash_password = lambda password: hashed
        app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
        now = datetime.datetime.now(datetime.UTC)
        with app.app_context():
            radiologists = [
                create_user(
                    db.session, f"rad{number:02d}@example.org", PASSWORD, Role.RADIOLOGIST, now
                ).id
                for number in range(1, RADIOLOGISTS + 1)
            ]
            db.session.commit()
            db.engine.dispose()  # the fill connects alone

        me = "rad01@example.org"
        if args.database == "postgresql":
            print(f"filling {args.studies:,} studies into PostgreSQL ...", flush=True)
            copy, index, analyze, definitions = fill_postgresql(
                settings.database_url, args.studies, radiologists, args.seed
            )
            print(
                f"fill: {copy:.1f} s COPY ({args.studies / copy:,.0f} studies/s) + {index:.1f} s"
                f" indexes + {analyze:.1f} s VACUUM ANALYZE",
                flush=True,
            )
            combos = combinations(settings.database_url)
            print(f"\nbaseline: every index but {', '.join(SEARCH_INDEXES)}", flush=True)
            before = measure(app, me, combos, args.baseline_runs, args.budget)
            seconds = add_search_indexes_postgresql(settings.database_url, definitions)
            print(f"\nrevision 0006's search indexes created in {seconds:.1f} s", flush=True)
        else:
            print(f"filling {args.studies:,} studies into {database} ...", flush=True)
            insert_seconds, index_seconds = fill(database, args.studies, radiologists, args.seed)
            print(
                f"fill: {insert_seconds:.1f} s bulk insert"
                f" ({args.studies / insert_seconds:,.0f} studies/s)"
                f" + {index_seconds:.1f} s baseline indexes;"
                f" database {database.stat().st_size / 2**20:,.0f} MiB",
                flush=True,
            )
            combos = combinations(settings.database_url)
            print(f"\nbaseline: indexes {', '.join(BASELINE_INDEXES)}", flush=True)
            before = measure(app, me, combos, args.baseline_runs, args.budget)
            with app.app_context():
                db.engine.dispose()  # no reader holds the WAL back from its checkpoint
            created, dropped, seconds = add_schema_indexes(database)
            print(
                f"\nindexes of Study.__table__: created {', '.join(created)}"
                f"; dropped {', '.join(dropped) or 'none'} in {seconds:.1f} s;"
                f" database {database.stat().st_size / 2**20:,.0f} MiB",
                flush=True,
            )
        after = measure(app, me, combos, args.runs, args.budget)
        report(combos, before, after)
        with app.app_context():
            db.engine.dispose()


if __name__ == "__main__":
    main()
