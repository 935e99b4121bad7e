"""Load: simulated users against the scaled-out portal on PostgreSQL, studies arriving.

Starts the platform from the project's own commands on free loopback ports (PostgreSQL,
Orthanc on its PostgreSQL index, `pacs engine up`, two `pacs worker`s, `pacs portal`
under gunicorn), fills the database with `--studies` synthetic studies (the worklist
benchmark's generator, COPY'd in), and keeps sending a small DX study by C-STORE every
`--arrival` seconds. Then locust (`benchmarks/load_users.py`: radiologists paging and
filtering, opening studies, saving drafts and signing the arriving studies; a manager on
the dashboards; a referrer reading reports) runs each number of users in `--steps` for
`--step-seconds`, and the last one for `--final-seconds`. Statistics are reset once every
user is signed in, so each step shows its steady state.

Prints, per step, requests/s, the error count and p50/p95/p99 per request type, and the
knee: the first number of users at which some request type's p95 crosses 300 ms. The
locust client runs on the same two cores as the platform; the load average is printed, and
where each step's CPU went: per part of the platform (each process with its descendants),
the client (locust and storescu), and the rest of the machine, in cores and in CPU
milliseconds a request.

    .venv/bin/python benchmarks/load.py [--studies 100000] [--steps 50,100,150,200]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import psutil  # noqa: E402
import psycopg  # noqa: E402

from benchmarks.worklist import STUDY_COLUMNS, study_rows  # noqa: E402
from core.accounts import Role  # noqa: E402
from pacs.orthanc_server import OrthancPaths, read_pid  # noqa: E402
from pacs.worker import raise_keyboard_interrupt  # noqa: E402
from storage.accounts import create_user  # noqa: E402
from storage.database import open_session  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.platform import Platform  # noqa: E402
from tests.support.services import run_pacs  # noqa: E402
from tests.support.studies import clone_study, run_storescu, write_files  # noqa: E402

PASSWORD = "load-test-passphrase-1"
RADIOLOGISTS = 12
KNEE_MS = 300.0
SIGN_IN_SECONDS = 10  # after the last user starts, until every sign-in has been answered
LOCUST = REPO_ROOT / ".venv" / "bin" / "locust"


def seed(url: str, studies: int) -> float:
    """The accounts the simulated users sign in with, then `studies` studies; seconds."""
    now = datetime.datetime.now(datetime.UTC)
    with open_session(url) as session:
        radiologists = [
            create_user(
                session, f"radiologist{i:02d}@load.example", PASSWORD, Role.RADIOLOGIST, now
            )
            for i in range(RADIOLOGISTS)
        ]
        create_user(session, "manager@load.example", PASSWORD, Role.MANAGER, now)
        create_user(
            session, "referrer@load.example", PASSWORD, Role.REFERRER, now, dicom_name="Dr^House"
        )
        ids = [user.id for user in radiologists]
    started = time.perf_counter()
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection, connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        with cursor.copy(f"COPY studies ({', '.join(STUDY_COLUMNS)}) FROM STDIN") as copy:
            for chunk in study_rows(studies, ids, now.replace(microsecond=0), seed=7):
                for row in chunk:
                    copy.write_row(row)
        cursor.execute("SELECT setval('studies_id_seq', (SELECT max(id) FROM studies))")
        # The referrer's reported studies get their final report (the generator writes
        # studies only; a reported study without one is a 404 to a referrer).
        cursor.execute(
            "INSERT INTO reports (study_id, key, status, version, sections, template_key,"
            " author_id, created_at, updated_at, updated_by)"
            " SELECT id, md5(id::text), 'final', 1, %s::json, '', %s, %s, %s, ''"
            " FROM studies WHERE lower(referring_physician) = 'dr^house'"
            " AND status IN ('final', 'amended')",
            ('{"findings": "No acute findings.", "impression": "Normal."}', ids[0], now, now),
        )
        cursor.execute("ANALYZE studies")
    return time.perf_counter() - started


def count_statuses(url: str) -> dict[str, int]:
    """The studies per status (`url` as libpq takes it): the seeded ones must still be
    listed after the run (the reconciliation, which finds them missing from the archive,
    must not remove them)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT status, count(*) FROM studies GROUP BY status")
        return dict(sorted(rows.fetchall()))


def send_studies(platform: Platform, folder: Path, every: float, stop: threading.Event) -> list:
    """A small DX study by C-STORE every `every` seconds until `stop`; their send times."""
    sent = []
    number = 0
    while not stop.wait(every):
        number += 1
        datasets = clone_study(
            "DX", PatientID=f"LOAD{number:05d}", ReferringPhysicianName="Dr^House"
        )
        run_storescu(platform.settings, write_files(datasets, folder / f"s{number}"))
        sent.append(time.time())
    return sent


def spawn_rate(users: int) -> int:
    """Users started a second: all of them in about ten seconds."""
    return max(1, users // 10)


def run_locust(portal_url: str, users: int, seconds: int, prefix: Path) -> list[dict[str, str]]:
    """One headless locust run; its per-type statistics rows (the aggregate last)."""
    env = {
        **os.environ,
        "LOAD_PASSWORD": PASSWORD,
        "LOAD_RADIOLOGISTS": str(RADIOLOGISTS),
    }
    command = [
        str(LOCUST), "-f", str(REPO_ROOT / "benchmarks" / "load_users.py"), "--headless",
        "--host", portal_url, "--users", str(users), "--spawn-rate", str(spawn_rate(users)),
        "--run-time", f"{seconds}s", "--reset-stats", "--csv", str(prefix), "--only-summary",
        "--loglevel", "WARNING", "--stop-timeout", "10",
    ]  # fmt: skip
    # Exit status 1 means "some requests failed": those are counted, not fatal.
    finished = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 300
    )
    if finished.returncode not in (0, 1):
        raise SystemExit(f"locust failed:\n{finished.stderr[-3000:]}")
    with open(f"{prefix}_stats.csv", newline="") as stats:
        rows = list(csv.DictReader(stats))
    with open(f"{prefix}_failures.csv", newline="") as failures:
        for failure in csv.DictReader(failures):  # why requests failed, not only how many
            error, count = failure["Error"][:160], failure["Occurrences"]
            print(f"  failed: {failure['Name']}: {error} ({count})")
    return rows


def tree_cpu_seconds(root: psutil.Process) -> float:
    """CPU seconds of `root` and its live descendants, each with the children it has waited
    for (a flow run's process that ended is counted in its worker's)."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def busy_cpu_seconds() -> float:
    """The machine's CPU seconds not idle, every core."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def client_cpu_seconds() -> float:
    """CPU seconds of this script and the children it has waited for: locust, storescu."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime


def sample_cpu(parts: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """CPU seconds so far per part, the client's, the machine's, and the wall clock."""
    sample = {name: sum(map(tree_cpu_seconds, roots)) for name, roots in parts.items()}
    sample["client (locust, storescu)"] = client_cpu_seconds()  # locust's: its whole run
    sample["machine"] = busy_cpu_seconds()
    sample["wall"] = time.monotonic()
    return sample


def print_cpu(before: dict[str, float], after: dict[str, float], requests: int) -> None:
    """Where the step's CPU went: cores busy on average, and CPU ms a request."""
    spent = {name: after[name] - before[name] for name in before}
    wall, machine = spent.pop("wall"), spent.pop("machine")
    spent["rest of the machine"] = machine - sum(spent.values())
    spent["all"] = machine
    print(f"  CPU over {wall:.0f} s ({requests} requests): cores busy, CPU ms a request")
    for name, seconds in spent.items():
        per_request = seconds * 1000 / requests if requests else float("nan")
        print(f"    {name:<26} {seconds / wall:5.2f} {per_request:7.1f}")


def platform_parts(platform: Platform, database: postgres.PostgresServer) -> dict:
    """The platform's processes by part: each root's descendants are counted with it. The
    PostgreSQL server holds the portal's, Orthanc's and Prefect's databases."""
    postmaster = int((database.data / "postmaster.pid").read_text().split()[0])
    orthanc = read_pid(OrthancPaths(platform.settings.orthanc_dir))
    assert orthanc is not None, "Orthanc is not running"
    processes = {name: psutil.Process(p.pid) for name, p in platform.processes.items()}
    return {
        "portal (gunicorn)": [processes["portal"]],
        "PostgreSQL": [psutil.Process(postmaster)],
        "Orthanc": [psutil.Process(orthanc)],
        "workers (two)": [processes["worker-1"], processes["worker-2"]],
        "Prefect server": [processes["engine"]],
    }


def print_step(users: int, rows: list[dict[str, str]]) -> tuple[float, float]:
    """The step's table; the worst p95 of any request type, and of any but signing in (a
    bcrypt check of cost 12 alone takes about 0.3 s of one core here), in ms."""
    total = rows[-1]
    print(
        f"\n{users} users: {float(total['Requests/s']):.1f} requests/s, "
        f"{total['Failure Count']} errors of {total['Request Count']} requests"
    )
    heading = ("count", "req/s", "p50", "p95", "p99")
    print(f"  {'request type':<18} " + " ".join(f"{h:>7}" for h in heading) + "  errors")
    worst = worst_but_sign_in = 0.0
    for row in rows[:-1]:
        p95 = float(row["95%"])
        worst = max(worst, p95)
        if row["Name"] != "sign in":
            worst_but_sign_in = max(worst_but_sign_in, p95)
        print(
            f"  {row['Name']:<18} {row['Request Count']:>7} {float(row['Requests/s']):7.1f} "
            f"{row['50%']:>7} {row['95%']:>7} {row['99%']:>7}  {row['Failure Count']:>6}"
        )
    return worst, worst_but_sign_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--steps", default="50,100,150,200", help="numbers of users, in order")
    parser.add_argument("--step-seconds", type=int, default=60)
    parser.add_argument("--final-seconds", type=int, default=300, help="the last step's length")
    parser.add_argument("--portal-workers", type=int, default=4)
    parser.add_argument("--arrival", type=float, default=3.0, help="seconds between studies")
    args = parser.parse_args()
    steps = [int(users) for users in args.steps.split(",")]
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)  # stop what it started, then end

    database = postgres.start_postgres("pacs", "orthanc", "prefect")
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="pacs-load-") as tmp:
        home = Path(tmp)
        (home / "pacs").mkdir()
        platform = Platform(home / "pacs", database)
        platform.env["PACS_PORTAL_WORKERS"] = str(args.portal_workers)
        try:
            upgraded = run_pacs(platform.env, "db", "upgrade")
            assert upgraded.returncode == 0, upgraded.stderr
            seeded = seed(platform.settings.database_url, args.studies)
            assert platform.start_orthanc().returncode == 0
            platform.start("engine", "engine", "up")
            platform.wait_for_line("engine", "Prefect server ready", timeout=600)
            platform.start("portal", "portal")
            for worker in ("worker-1", "worker-2"):
                platform.start(worker, "worker")
                platform.wait_for_line(worker, "pacs: worker", timeout=300)
            platform.wait_for_portal(timeout=300)
            # A department's dashboards have a warehouse: built once before the users come
            # (the scheduled refreshes keep it up to date after).
            built = run_pacs(platform.env, "warehouse", "refresh", "--full", timeout=1800)
            assert built.returncode == 0, built.stderr
            portal_url = platform.portal_url
            print(
                f"load benchmark: {args.studies} studies on PostgreSQL (COPY {seeded:.0f} s), "
                f"portal under gunicorn with {args.portal_workers} processes, two workers, "
                f"a DX study by C-STORE every {args.arrival:g} s"
            )
            sender = threading.Thread(
                target=send_studies, args=(platform, home, args.arrival, stop), daemon=True
            )
            sender.start()
            parts = platform_parts(platform, database)
            knee = knee_but_sign_in = None
            for index, users in enumerate(steps):
                seconds = args.final_seconds if index == len(steps) - 1 else args.step_seconds
                # The CPU is sampled from when the users have signed in (bcrypt) to the end.
                before: dict[str, float] = {}
                signed_in = threading.Timer(
                    users / spawn_rate(users) + SIGN_IN_SECONDS,
                    lambda sample=before: sample.update(sample_cpu(parts)),
                )
                signed_in.start()
                rows = run_locust(portal_url, users, seconds, home / f"step{users}")
                signed_in.join()
                after = sample_cpu(parts)
                worst, worst_but_sign_in = print_step(users, rows)
                print_cpu(before, after, int(rows[-1]["Request Count"]))
                if knee is None and worst > KNEE_MS:
                    knee = users
                if knee_but_sign_in is None and worst_but_sign_in > KNEE_MS:
                    knee_but_sign_in = users
                print(f"  load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            statuses = count_statuses(database.url("pacs", "postgresql"))
            print(f"studies by status at the end: {statuses}")
            for label, users in (("", knee), (", sign in left out", knee_but_sign_in)):
                print(
                    f"knee (some request type's p95 over {KNEE_MS:.0f} ms{label}): "
                    + (f"{users} users" if users else f"not reached up to {steps[-1]} users")
                )
        finally:
            stop.set()
            platform.stop_all()
            database.stop()


if __name__ == "__main__":
    main()
