"""Read SQLite query results as Arrow tables, in child processes.

ADBC's SQLite driver links a SQLite library of its own. Two SQLite libraries in one process
do not see each other's POSIX locks, and closing a file in one releases the locks the other
holds on it ("How To Corrupt An SQLite Database File", 2.2): the portal's and the pipeline's
connections then failed with "disk I/O error". In a child process the driver is one more
reader among processes, which SQLite's locking is made for. The statements are dealt out to
one child per core, so that the two big ones (studies and events) are read side by side. The
results come back as Arrow IPC files in a temporary folder (memory-mapped by the parent).

    python -m warehouse.sqlite_arrow DATABASE FOLDER N [N ...]

runs the statements numbered N of FOLDER/statements.json ([[sql, [params...]], ...]) and
writes each result to FOLDER/N.arrow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

# SQLite's driver infers a column's type from its first batch: a column NULL all through
# it (removed_at) would then refuse the text that comes later. One batch sees every value.
BATCH_ROWS = 2**30
TIMEOUT_SECONDS = 3600


class SqliteReadError(RuntimeError):
    """A child process could not read the database (its one-line reason)."""


def read_sqlite_tables(database: str, statements: list[tuple[str, list[Any]]]) -> list[pa.Table]:
    """The results of `statements` (SQL with ?N placeholders, parameters) on `database`."""
    children = max(1, min(len(statements), os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="pacs-extract-") as folder:
        Path(folder, "statements.json").write_text(json.dumps(statements))
        processes: list[subprocess.Popen] = []
        try:
            for first in range(children):
                numbers = [str(n) for n in range(first, len(statements), children)]
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "warehouse.sqlite_arrow",
                            database,
                            folder,
                            *numbers,
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                        cwd=Path(__file__).resolve().parents[1],
                    )
                )
            for process in processes:
                _, errors = process.communicate(timeout=TIMEOUT_SECONDS)
                if process.returncode != 0:
                    lines = errors.strip().splitlines() or [f"exit status {process.returncode}"]
                    raise SqliteReadError(f"reading {database} failed: {lines[-1]}")
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        return [
            pa.ipc.open_file(pa.memory_map(f"{folder}/{n}.arrow")).read_all()
            for n in range(len(statements))
        ]


def write_tables(database: str, folder: str, numbers: list[int]) -> None:
    """Through ADBC's low-level API: its DB-API module imports Polars (~0.7 s a start)."""
    import adbc_driver_manager
    import adbc_driver_sqlite

    statements = json.loads(Path(folder, "statements.json").read_text())
    with (
        adbc_driver_sqlite.connect(database) as db,
        adbc_driver_manager.AdbcConnection(db) as connection,
    ):
        for n in numbers:
            sql, params = statements[n]
            with adbc_driver_manager.AdbcStatement(connection) as statement:
                statement.set_options(**{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
                statement.set_sql_query(sql)
                if params:
                    columns = {str(i): [value] for i, value in enumerate(params, 1)}
                    schema, array = pa.record_batch(columns).__arrow_c_array__()
                    statement.bind(array, schema)
                stream, _ = statement.execute_query()
                table = pa.RecordBatchReader._import_from_c(stream.address).read_all()
            with pa.ipc.new_file(f"{folder}/{n}.arrow", table.schema) as writer:
                writer.write_table(table)


if __name__ == "__main__":
    try:
        write_tables(sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[3:]])
    except Exception as error:  # the driver's message spans lines; the parent shows the last
        sys.exit(f"{type(error).__name__}: {' '.join(str(error).split())}")
