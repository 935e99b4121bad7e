"""Worklist latency at scale: the studies API and page over 1,000,000 studies on SQLite.

Fills a fresh SQLite database (temporary PACS_HOME) with synthetic studies by bulk
insert: mostly final studies over ~5 years, a few thousand received / in progress /
preliminary ones among the most recent, CT/MR/CR/DX/US/MG in realistic shares,
~5 % STAT and ~15 % URGENT, reported studies assigned to a dozen radiologists.

Then, in the same run, it measures server-side (Flask test client, no network):

- each typical filter/sort combination through `GET /api/v1/studies` (bearer token),
- the same combination as a bare `query_worklist` call (one session per call),
- the `/worklist` HTML page (signed in through the form, CSRF token and all),

first with the indexes the schema had before the worklist indexes (the baseline),
then after creating the indexes `Study.__table_args__` declares now. Prints p50/p95
in ms per combination and pass, and the baseline/indexed ratio of the p95s.
No ANALYZE is run: a database made by `create_all` has no planner statistics either.

    .venv/bin/python benchmarks/worklist.py [--studies 1000000] [--runs 50]
"""

from __future__ import annotations

import argparse
import datetime
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import make_env  # noqa: E402

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
IMAGES = {"CR": (2, 4), "DX": (1, 3), "CT": (150, 1500), "MR": (200, 1200), "US": (10, 80),
          "MG": (4, 8)}
SYLLABLES = ["ber", "man", "son", "mil", "ler", "schu", "wal", "ko", "ska", "ran", "dal", "fer",
             "gon", "hal", "is", "jan", "kel", "lin", "mor", "nov", "ol", "pet", "quin", "ros",
             "sal", "tor", "ul", "ven", "wik", "zan"]
GIVEN = ["Anna", "Ben", "Carla", "David", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Karin", "Liam", "Mia", "Noah", "Olga", "Paul", "Rosa", "Samir", "Tara", "Ugo", "Vera",
         "Wei", "Yara", "Zoe", "Amir", "Lena", "Marco", "Nina", "Omar", "Petra", "Ravi", "Sofia"]
REFERRERS = ["Dr^House", "Dr^Grey", "Dr^Kildare", "Dr^Quinn", "Dr^Zhivago", "Dr^Watson"]
INSTITUTIONS = ["General Hospital", "North Clinic", "Imaging Center West"]


@dataclass(frozen=True)
class Combination:
    name: str
    query: str  # the API's query string; the page and `query_worklist` read the same one


def iso(moment: datetime.datetime) -> str:
    """SQLAlchemy's SQLite DATETIME storage format (naive; UtcDateTime stores UTC)."""
    return moment.isoformat(" ", "microseconds")


def pick_weighted(rng: random.Random, table: dict[str, tuple[float, list[str]]], n: int):
    names = list(table)
    return rng.choices(names, weights=[table[name][0] for name in names], k=n)


def make_patients(rng: random.Random, count: int) -> list[tuple[str, str, str, str]]:
    families = sorted(
        {
            "".join(rng.sample(SYLLABLES, rng.choice((2, 2, 3)))).capitalize()
            for _ in range(20_000)
        }
    )
    ids = rng.sample(range(10_000_000), count)
    patients = []
    start = datetime.date(1930, 1, 1)
    for number in ids:
        name = f"{rng.choice(families)}^{rng.choice(GIVEN)}"
        birth = start + datetime.timedelta(days=rng.randrange(365 * 90))
        patients.append((name, f"M{number:07d}", birth.isoformat(), rng.choice("MF")))
    return patients


def study_rows(
    count: int, radiologist_ids: list[int], now: datetime.datetime, seed: int
) -> Iterator[list[tuple]]:
    """Chunks of row tuples in STUDY_COLUMNS order, oldest study first (ids follow arrival)."""
    rng = random.Random(seed)
    patients = make_patients(rng, max(1, count * 2 // 5))
    span = datetime.timedelta(days=365 * YEARS).total_seconds()
    start = now - datetime.timedelta(days=365 * YEARS)
    # The most recent studies are still being read; a few old ones were forgotten.
    open_window = min(count, 6_000)
    stragglers = set(rng.sample(range(count - open_window), min(300, count - open_window)))
    chunk: list[tuple] = []
    modalities = pick_weighted(rng, MODALITIES, count)
    for index in range(count):
        modality = modalities[index]
        received = start + datetime.timedelta(
            seconds=span * (index + rng.random()) / count
        )
        local = received + datetime.timedelta(hours=1, minutes=-rng.randrange(5, 120))
        age_rank = count - index
        roll = rng.random()
        if age_rank <= open_window or index in stragglers:
            status = (
                "received" if roll < 0.5 else "in_progress" if roll < 0.58
                else "preliminary" if roll < 0.78 else "quarantined" if roll < 0.8 else "final"
            )
        else:
            status = "final" if roll < 0.985 else "amended" if roll < 0.995 else "removed"
        if status in ("final", "amended", "preliminary"):
            assignee = rng.choice(radiologist_ids) if rng.random() < 0.9 else None
        elif status == "in_progress":
            assignee = rng.choice(radiologist_ids)
        elif status == "received":
            assignee = rng.choice(radiologist_ids) if rng.random() < 0.15 else None
        else:
            assignee = None
        roll = rng.random()
        priority = "STAT" if roll < 0.05 else "URGENT" if roll < 0.20 else "ROUTINE"
        name, patient_id, birth, sex = patients[int(len(patients) * rng.random() ** 1.3)]
        low, high = IMAGES[modality]
        series = rng.randint(1, 3) if modality in ("CR", "DX", "MG") else rng.randint(2, 12)
        chunk.append(
            (
                index + 1,
                f"1.2.826.0.1.3680043.10.543.{index + 1}",
                f"{rng.getrandbits(160):040x}",
                status,
                name,
                patient_id,
                birth,
                sex,
                f"ACC{index + 1:08d}",
                local.date().isoformat(),
                iso(local.replace(tzinfo=None, microsecond=0)),
                modality,
                modality if rng.random() < 0.95 else f"{modality}\\SR",
                rng.choice(MODALITIES[modality][1]),
                rng.choice(BODY_PARTS[modality]),
                rng.choice(REFERRERS),
                rng.choice(INSTITUTIONS),
                priority,
                iso((local - datetime.timedelta(hours=rng.randrange(1, 72))).replace(tzinfo=None)),
                iso(received.replace(tzinfo=None)),
                iso((received + datetime.timedelta(seconds=30)).replace(tzinfo=None)),
                iso(received.replace(tzinfo=None) + datetime.timedelta(days=30))
                if status == "removed" else None,
                series,
                rng.randint(low, high),
                "[]",
                assignee,
            )
        )
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


STUDY_COLUMNS = (
    "id", "study_instance_uid", "orthanc_id", "status", "patient_name", "patient_id",
    "patient_birth_date", "patient_sex", "accession_number", "study_date", "study_datetime",
    "modality", "modalities", "description", "body_part", "referring_physician", "institution",
    "priority", "ordered_at", "received_at", "ingested_at", "removed_at", "series_count",
    "instance_count", "warnings", "assignee_id",
)


def studies_indexes(connection: sqlite3.Connection) -> set[str]:
    return {
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'studies'"
            " AND sql IS NOT NULL"
        )
    }


def fill(path: Path, count: int, radiologist_ids: list[int], seed: int) -> tuple[float, float]:
    """Bulk insert `count` studies (indexes dropped first), then the baseline indexes.

    Returns the seconds spent inserting and building the baseline indexes."""
    from storage.database import Study

    assert set(STUDY_COLUMNS) == {c.name for c in Study.__table__.columns}, "schema changed"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    for name in studies_indexes(connection):
        connection.execute(f"DROP INDEX {name}")
    insert = (
        f"INSERT INTO studies ({', '.join(STUDY_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(STUDY_COLUMNS))})"
    )
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    started = time.perf_counter()
    connection.execute("BEGIN")
    for chunk in study_rows(count, radiologist_ids, now, seed):
        connection.executemany(insert, chunk)
    connection.execute("COMMIT")
    inserted = time.perf_counter()
    for sql in BASELINE_INDEXES.values():
        connection.execute(sql)
    indexed = time.perf_counter()
    connection.close()
    return inserted - started, indexed - inserted
