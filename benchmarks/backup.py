"""Time `pacs backup` and `pacs restore` of the demo site (SQLite database, Orthanc on its
SQLite index), in-process, with the load average at the start.

A temporary site gets the demo (12 studies, 257 instances, 16 orders, the demo users) sent
to its Orthanc by C-STORE; then, each `--rounds` times: a backup while Orthanc runs, and a
restore of it into an empty PACS_HOME (secrets, database, the instances stored again through
a temporary Orthanc, started and stopped by the restore). Prints every round and the best.

    .venv/bin/python benchmarks/backup.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.settings import load_settings
from pacs import orthanc_server
from pacs.backup import write_backup
from pacs.db_commands import upgrade_schema
from pacs.demo import create_demo_users, load_demo
from pacs.restore import restore_backup
from tests.support.services import make_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pacs-backup-bench-"))
    try:
        settings = load_settings(make_env(folder / "site"))
        upgrade_schema(settings)
        process = orthanc_server.start_orthanc(settings)
        try:
            sent = load_demo(settings, out=io.StringIO())
            create_demo_users(settings, out=io.StringIO())
            print(f"demo site: {sent} instances; load average {os.getloadavg()[0]:.1f}")
            backups, restores = [], []
            for round_ in range(args.rounds):
                started = time.perf_counter()
                summary = write_backup(settings, folder / f"backups-{round_}")
                backups.append(time.perf_counter() - started)
                home = folder / f"restored-{round_}"
                env = make_env(home, PACS_DATABASE_URL=f"sqlite:///{home / 'pacs.sqlite3'}")
                started = time.perf_counter()
                restore_backup(summary.folder, env, force=False)
                restores.append(time.perf_counter() - started)
                size = sum(p.stat().st_size for p in summary.folder.rglob("*") if p.is_file())
                print(
                    f"round {round_ + 1}: backup {backups[-1]:.1f} s "
                    f"({summary.instances} instances, {size / 1e6:.0f} MB), "
                    f"restore {restores[-1]:.1f} s; load average {os.getloadavg()[0]:.1f}"
                )
        finally:
            orthanc_server.stop_orthanc(settings)
            process.wait()
        print(f"best: backup {min(backups):.1f} s, restore {min(restores):.1f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
