"""The portal's memory while it imports ZIP archives with a huge member, and while it refuses
large uploads from users who may not import.

Starts its own Orthanc (temporary PACS_HOME, free loopback ports) and serves the portal
in a process of its own exactly as `pacs up` does (waitress), then measures the portal
process' resident memory (sampled every 50 ms, and the kernel's peak VmHWM):

1. baseline: 8 imports in parallel of a ZIP holding only real DICOM members;
2. the same 8 imports of a ZIP that also holds a 2 GB member that is not DICOM, deflated
   with a ratio under the ZIP-bomb limit (mostly zeros, some random bytes: ~14 MB on
   disk, so the uploads stay small; the portal still sees a 2 GB member);
3. the same with PACS_IMPORT_MAX_MB below the member's size: refused unread, per member;
4. 200 MB bodies (made as they are sent) posted by a referrer and by a radiologist
   without the import right: how long the refusal takes and what the portal's memory did.

    .venv/bin/python benchmarks/import_memory.py [--member-gb 2] [--parallel 8]

The ZIPs are written to a temporary folder and deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402

from config.settings import load_settings  # noqa: E402
from core.accounts import Role  # noqa: E402
from pacs.orthanc_server import start_orthanc, stop_orthanc  # noqa: E402
from pacs.up import make_portal_server  # noqa: E402
from pacs.wsgi import make_app  # noqa: E402
from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from storage.accounts import AccountError, create_user  # noqa: E402
from tests.support.reports import part10_of  # noqa: E402
from tests.support.services import make_env  # noqa: E402
from tests.support.studies import clone_study  # noqa: E402

PASSWORD = "benchmark-passphrase-1"
MiB = 1024**2
CHUNK = MiB
RANDOM_PER_CHUNK = 7 * 1024  # ~145-fold compression: under the 200-fold ZIP-bomb limit


def write_big_member_zip(path: Path, member_bytes: int) -> None:
    """A ZIP with one deflated member of `member_bytes` that is not DICOM, made in chunks."""
    zeros = bytes(CHUNK - RANDOM_PER_CHUNK)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("video/recording.bin", "w", force_zip64=True) as member,
    ):
        written = 0
        while written < member_bytes:
            chunk = (os.urandom(RANDOM_PER_CHUNK) + zeros)[: member_bytes - written]
            member.write(chunk)
            written += len(chunk)


def write_dicom_zip(path: Path, base: Path | None) -> int:
    """Real DICOM members (a fresh CT study), added to a copy of `base` when given."""
    if base is not None:
        path.write_bytes(base.read_bytes())
    datasets = clone_study("CT", limit=20)
    with zipfile.ZipFile(path, "a" if base else "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, ds in enumerate(datasets):
            archive.writestr(f"study/{number:04d}.dcm", part10_of(ds))
    return len(datasets)


def serve() -> None:
    """The portal as `pacs up` serves it, from the PACS_* environment (a process of its own,
    so that its memory is the portal's alone)."""
    settings = load_settings()
    make_portal_server(make_app(settings), settings).run()


def read_memory(pid: int) -> tuple[int, int]:
    """The process' resident memory now and its peak (VmRSS, VmHWM), in bytes."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def reset_peak(pid: int) -> None:
    """Start VmHWM afresh (Linux: writing 5 to clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")


class Sampler:
    """Samples a process' RSS every 50 ms in a thread; `peak` is the largest sample."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.running = pid, 0, True
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, read_memory(self.pid)[0])
            time.sleep(0.05)

    def __enter__(self) -> Sampler:
        reset_peak(self.pid)
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.running = False
        self.thread.join()


class Portal:
    """The portal in a process of its own, with an admin, a radiologist and a referrer."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        settings = load_settings(env)
        self.url = settings.portal_url
        app = create_app({"PACS_SETTINGS": settings})
        with app.app_context():
            now = datetime.datetime.now(datetime.UTC)
            for role in (Role.ADMIN, Role.RADIOLOGIST, Role.REFERRER):
                with contextlib.suppress(AccountError):  # made for an earlier run
                    create_user(db.session, f"{role}@bench.example", PASSWORD, role, now)
                    db.session.commit()
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"], env={**clean, **self.env}, cwd=REPO_ROOT
        )
        deadline = time.monotonic() + 180  # a loaded machine: the portal's imports take long
        while True:
            try:
                requests.get(f"{self.url}/api/v1/openapi.json", timeout=5).raise_for_status()
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise SystemExit("the portal did not start within 180 s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def token(self, role: Role) -> dict[str, str]:
        answer = requests.post(
            f"{self.url}/api/v1/auth/token",
            json={"email": f"{role}@bench.example", "password": PASSWORD},
            timeout=30,
        )
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['token']}"}


def import_in_parallel(portal: Portal, zips: list[Path]) -> tuple[float, int, int, list[dict]]:
    """POST every ZIP at once; seconds, sampled peak RSS, kernel peak RSS, the summaries."""
    admin = portal.token(Role.ADMIN)

    def post(path: Path) -> dict:
        with path.open("rb") as handle:
            answer = requests.post(
                f"{portal.url}/api/v1/imports",
                files={"files": (path.name, handle, "application/zip")},
                headers=admin,
                timeout=3600,
            )
        answer.raise_for_status()
        return answer.json()

    with Sampler(portal.pid) as sampler:
        started = time.perf_counter()
        with ThreadPoolExecutor(len(zips)) as pool:
            summaries = list(pool.map(post, zips))
        seconds = time.perf_counter() - started
    return seconds, sampler.peak, read_memory(portal.pid)[1], summaries


class LazyBody:
    """A request body of `size` bytes made as it is sent (requests reads it in blocks)."""

    def __init__(self, size: int) -> None:
        self.size, self.sent = size, 0

    def __len__(self) -> int:
        return self.size - self.sent

    def read(self, count: int = -1) -> bytes:
        count = self.size - self.sent if count < 0 else min(count, self.size - self.sent)
        self.sent += count
        return b"x" * count


def refuse_big_bodies(portal: Portal, size: int) -> list[tuple[str, int, float]]:
    results = []
    for role in (Role.REFERRER, Role.RADIOLOGIST):
        headers = {
            **portal.token(role),
            "Content-Type": "multipart/form-data; boundary=xxxxxxxx",
        }
        started = time.perf_counter()
        try:
            status = requests.post(
                f"{portal.url}/api/v1/imports", data=LazyBody(size), headers=headers, timeout=300
            ).status_code
        except requests.ConnectionError:
            status = 0  # the server answered and closed before the body was sent
        results.append((str(role), status, time.perf_counter() - started))
    return results


def describe(summaries: list[dict]) -> str:
    totals: dict[str, int] = {}
    for summary in summaries:
        for outcome, count in summary["counts"].items():
            totals[outcome] = totals.get(outcome, 0) + count
    reasons = {f["reason"] for s in summaries for f in s["files"] if f["name"].endswith(".bin")}
    return f"{totals}; the big member: {sorted(reasons)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member-gb", type=float, default=2.0)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    member_bytes = int(args.member_gb * 1000**3)
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="pacs-import-memory-") as folder:
        home = Path(folder)
        env = make_env(home / "home")
        settings = load_settings(env)
        orthanc = start_orthanc(settings)
        try:
            started = time.perf_counter()
            big = home / "big.zip"
            write_big_member_zip(big, member_bytes)
            print(
                f"ZIP with a {member_bytes / 1000**3:.1f} GB member: "
                f"{big.stat().st_size / MiB:.1f} MB on disk "
                f"(made in {time.perf_counter() - started:.0f} s)"
            )
            plain = [home / f"plain-{n}.zip" for n in range(args.parallel)]
            with_big = [home / f"big-{n}.zip" for n in range(args.parallel)]
            refused = [home / f"refused-{n}.zip" for n in range(args.parallel)]
            for path in plain:
                write_dicom_zip(path, None)
            for path in with_big + refused:
                instances = write_dicom_zip(path, big)
            print(f"each ZIP also holds {instances} DICOM instances (CT)")

            runs = [
                ("baseline: DICOM members only", env, plain),
                (f"with the {args.member_gb:g} GB member", env, with_big),
                (
                    "PACS_IMPORT_MAX_MB=1000 (the member refused unread)",
                    {
                        **make_env(home / "limited"),
                        "PACS_ORTHANC_URL": settings.orthanc_url,
                        "PACS_ORTHANC_PASSWORD": settings.orthanc_password,
                        "PACS_IMPORT_MAX_MB": "1000",
                    },
                    refused,
                ),
            ]
            baseline_peak = None
            for label, run_env, zips in runs:
                portal = Portal(run_env)
                try:
                    portal.start()
                    idle = read_memory(portal.pid)[0]
                    seconds, sampled, kernel_peak, summaries = import_in_parallel(portal, zips)
                    after = read_memory(portal.pid)[0]
                    if baseline_peak is None:
                        baseline_peak = kernel_peak
                    print(
                        f"{label}: {args.parallel} imports in parallel in {seconds:.1f} s; "
                        f"portal RSS idle {idle / MiB:.0f} MB, peak {kernel_peak / MiB:.0f} MB "
                        f"(VmHWM; sampled {sampled / MiB:.0f} MB), after {after / MiB:.0f} MB; "
                        f"peak / baseline peak {kernel_peak / baseline_peak:.2f}; "
                        f"load average {os.getloadavg()[0]:.1f}"
                    )
                    print(f"  {describe(summaries)}")
                    if label.startswith("baseline"):
                        continue
                    if label.startswith("PACS_IMPORT_MAX_MB"):
                        before = read_memory(portal.pid)[0]
                        with Sampler(portal.pid) as sampler:
                            refusals = refuse_big_bodies(portal, 200 * MiB)
                        for role, status, took in refusals:
                            print(
                                f"200 MB body from a {role} (no import right): HTTP {status} "
                                f"in {took:.2f} s"
                            )
                        print(
                            f"  portal RSS before {before / MiB:.0f} MB, peak while refusing "
                            f"{sampler.peak / MiB:.0f} MB"
                        )
                finally:
                    portal.stop()
        finally:
            stop_orthanc(settings)
            orthanc.wait()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
