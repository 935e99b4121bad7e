"""A throwaway PostgreSQL server (Debian's postgresql-15) on a free loopback port.

initdb and pg_ctl refuse to run as root: as root they run as the `postgres` user, in a
folder of its own outside pytest's (root-only) temporary folders. Trust authentication
on loopback only; the databases are created empty.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import find_free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "pacs"


@dataclass(frozen=True)
class PostgresServer:
    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{USER}@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args: str) -> None:
        run_as_postgres(
            [
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
                "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
                *args,
            ]
        )  # fmt: skip

    def restart(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "restart")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(*databases: str) -> PostgresServer:
    """initdb (~1 s), start, and create `databases` owned by the `pacs` superuser."""
    folder = Path(tempfile.mkdtemp(prefix="pacs-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = PostgresServer(folder, find_free_port())
    run_as_postgres(
        [
            str(PG_BIN / "initdb"), "-D", str(server.data), "-U", USER, "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8",
        ]
    )  # fmt: skip
    server.pg_ctl("-w", "start")
    for database in databases:
        run_as_postgres(
            [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", USER,
             database]
        )  # fmt: skip
    return server


def run_as_postgres(command: list[str]) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120, cwd="/")
