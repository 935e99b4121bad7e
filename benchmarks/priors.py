"""Priors list latency: one patient with 200 studies in a database of many (SQLite).

Fills a fresh SQLite database with the worklist benchmark's synthetic studies
(`benchmarks/worklist.py`: ~2.5 studies a patient), adds one patient with `--priors`
studies over ten years (three in four with a final report and its impression), then
measures, server-side (wall time, and CPU time of the process, which the machine's load does
not inflate):

- `GET /api/v1/studies/{uid}/priors` (Flask test client, bearer token, JSON of 199 priors),
- the bare `storage.priors.list_priors` call (one session per call),

first on the indexes the schema had before priors (the baseline: `ix_studies_patient_id`
alone), then after creating `ix_studies_patient_issuer_date`. Prints p50/p95 in ms and the
baseline/indexed ratio of the p95s.

    .venv/bin/python benchmarks/priors.py [--studies 1000000] [--priors 200] [--runs 200]
"""

from __future__ import annotations

import argparse
import datetime
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.worklist import (  # noqa: E402
    PASSWORD,
    add_schema_indexes,
    fill,
    percentile,
    timed,
)
from config.settings import load_settings  # noqa: E402
from tests.support.services import make_env  # noqa: E402

PATIENT_ID = "BENCH-PRIORS"
MODALITIES = (("CT", "CHEST"), ("MR", "HEAD"), ("CR", "CHEST"), ("US", "ABDOMEN"))


def add_patient(path: Path, count: int) -> str:
    """`count` studies of one patient, newest last; returns the newest one's UID."""
    connection = sqlite3.connect(path, isolation_level=None)
    (first_id,) = connection.execute("SELECT coalesce(max(id), 0) + 1 FROM studies").fetchone()
    today = datetime.date.today()
    connection.execute("BEGIN")
    for number in range(count):
        study_id = first_id + number
        date = today - datetime.timedelta(days=18 * (count - number))
        modality, body_part = MODALITIES[number % len(MODALITIES)]
        stamp = f"{date.isoformat()} 09:00:00.000000"
        connection.execute(
            "INSERT INTO studies (id, study_instance_uid, orthanc_id, status, patient_name,"
            " patient_id, issuer_of_patient_id, patient_sex, accession_number, study_date,"
            " study_datetime, modality, modalities, description, body_part,"
            " referring_physician, institution, priority, received_at, ingested_at,"
            " series_count, instance_count, warnings, identity_acknowledged)"
            " VALUES (?, ?, ?, 'final', 'Bench^Patient', ?, '', 'F', ?, ?, ?, ?, ?, ?, ?,"
            " 'Dr^House', '', 'ROUTINE', ?, ?, 3, 100, '[]', '{}')",
            (
                study_id,
                f"1.2.826.0.1.3680043.10.544.{study_id}",
                f"bench-prior-{study_id}",
                PATIENT_ID,
                f"BENCHP{number:05d}",
                date.isoformat(),
                stamp,
                modality,
                modality,
                f"{modality} {body_part.lower()}",
                body_part,
                stamp,
                stamp,
            ),
        )
        if number % 4:
            connection.execute(
                "INSERT INTO reports (study_id, key, status, version, sections, template_key,"
                " created_at, updated_at, updated_by)"
                " VALUES (?, ?, 'final', 3, ?, '', ?, ?, '')",
                (
                    study_id,
                    f"bench{study_id:027d}",
                    '{"findings": "' + "Unremarkable. " * 40 + '", "impression": "Stable."}',
                    stamp,
                    stamp,
                ),
            )
    connection.execute("COMMIT")
    connection.close()
    return f"1.2.826.0.1.3680043.10.544.{first_id + count - 1}"


def measure(app, study_uid: str, runs: int) -> dict[str, list[float]]:
    from portal.extensions import db
    from storage.assignments import find_listed_study
    from storage.priors import list_priors

    client = app.test_client()
    token = client.post(
        "/api/v1/auth/token", json={"email": "rad@example.org", "password": PASSWORD}
    ).json["token"]
    headers = {"Authorization": f"Bearer {token}"}

    def call_api() -> None:
        answer = client.get(f"/api/v1/studies/{study_uid}/priors", headers=headers)
        assert answer.status_code == 200 and len(answer.json["items"]) >= 199, answer.status_code

    def call_storage() -> None:
        with app.app_context():
            study = find_listed_study(db.session, study_uid)
            assert len(list_priors(db.session, study)) >= 199
            db.session.remove()

    return {
        "API": timed(call_api, runs, 60.0),
        "list_priors": timed(call_storage, runs, 60.0),
        "API cpu": timed_cpu(call_api, runs),
        "list_priors cpu": timed_cpu(call_storage, runs),
    }


def timed_cpu(call, runs: int) -> list[float]:
    """Milliseconds of this process's CPU time per call: what the call costs whatever the
    machine's load (wall time on a loaded machine is mostly waiting for a core)."""
    call()
    times = []
    for _ in range(runs):
        started = time.process_time()
        call()
        times.append((time.process_time() - started) * 1000)
    return times


def show(name: str, figures: dict[str, list[float]]) -> None:
    for what, times in figures.items():
        print(
            f"  {name:9} {what:16} p50 {percentile(times, 0.5):8.2f} ms"
            f"  p95 {percentile(times, 0.95):8.2f} ms  ({len(times)} calls)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1_000_000)
    parser.add_argument("--priors", type=int, default=200)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pacs-bench-priors-") as tmp:
        settings = load_settings(make_env(Path(tmp)))
        database = Path(settings.database_url.removeprefix("sqlite:///"))

        import storage.accounts
        from core.accounts import Role, hash_password
        from portal import create_app
        from portal.extensions import db
        from storage.accounts import create_user

        hashed = hash_password(PASSWORD)
        storage.accounts.hash_password = lambda password: hashed
        app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
        now = datetime.datetime.now(datetime.UTC)
        with app.app_context():
            rad = create_user(db.session, "rad@example.org", PASSWORD, Role.RADIOLOGIST, now)
            db.session.commit()
            radiologists = [rad.id]
            db.engine.dispose()

        print(f"filling {args.studies:,} studies into {database} ...", flush=True)
        inserted, indexed = fill(database, args.studies, radiologists, args.seed)
        newest = add_patient(database, args.priors)
        print(
            f"fill: {inserted:.1f} s insert + {indexed:.1f} s baseline indexes;"
            f" one patient with {args.priors} studies; "
            f"{database.stat().st_size / 2**20:,.0f} MiB",
            flush=True,
        )
        before = measure(app, newest, max(20, args.runs // 4))
        show("baseline", before)
        with app.app_context():
            db.engine.dispose()
        created, _, seconds = add_schema_indexes(database)
        print(f"created {', '.join(created)} in {seconds:.1f} s", flush=True)
        after = measure(app, newest, args.runs)
        show("indexed", after)
        for what in after:
            ratio = percentile(before[what], 0.95) / percentile(after[what], 0.95)
            print(f"  p95 baseline/indexed ({what}): {ratio:.1f}x", flush=True)
        with app.app_context():
            db.engine.dispose()


if __name__ == "__main__":
    main()
