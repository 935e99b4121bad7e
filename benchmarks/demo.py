"""How long the demo department takes: `pacs demo` from an empty PACS_HOME (users, today's
studies by C-STORE, eight weeks of history recorded and sent, the research export and a
warehouse refresh, the site's Prefect server started for them), against the same command
run again right after (everything there already: the baseline of a run with nothing to do).

Orthanc runs on free loopback ports in a temporary folder; the Prefect server is the one
`pacs demo` starts for its own duration. Prints both wall times, the demo's own figure
(`demo: ready in N s`) and their ratio, with the machine's load average.

    .venv/bin/python benchmarks/demo.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.services import PACS_COMMAND, make_env  # noqa: E402


def run(env: dict[str, str], *args: str) -> tuple[float, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PACS_", "PREFECT_"))}
    started = time.perf_counter()
    result = subprocess.run(
        [str(PACS_COMMAND), *args], env={**clean, **env}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"pacs {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return seconds, result.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pacs-demo-bench-") as folder:
        env = make_env(Path(folder))
        run(env, "orthanc", "start")
        try:
            first, output = run(env, "demo")
            again, _ = run(env, "demo")
        finally:
            run(env, "orthanc", "stop")
    ready = re.search(r"demo: ready in ([\d.]+) s", output)
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"pacs demo from empty: {first:.1f} s wall ({ready.group(1) if ready else '?'} s inside)")
    print(f"pacs demo again (nothing to do): {again:.1f} s wall")
    print(f"ratio: {first / again:.1f}x")


if __name__ == "__main__":
    main()
