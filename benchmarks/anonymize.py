"""De-identification rate: ours (core/export_instances.py) against dicognito, same inputs.

Builds 2,000 instances in memory from the demo studies (CT, MR, CR, DX, US; 256x256 to
640x480 pixels) with the synthetic identifiers of tests/support/identified_studies.py in standard,
sequence, private and free-text attributes (UTF-8, Latin-1 and Japanese names), then in the
same run:

- ours: `deidentify_files` with the basic profile and the modified-dates option across
  `--workers` processes (default 2): read, de-identify, write, and verify every output
  for its source's identifiers (the flow's per-instance check, included in the time);
- dicognito (installed into this virtual environment with pip when missing: it is a
  benchmark baseline, not a project dependency): read, `Anonymizer().anonymize`, write,
  in one process as its command line does.

Both read from and write to memory (no disk). Prints instances/s of each, the ratio, and
leaks: outputs of each tool that still contain any synthetic identifier (as UTF-8 or
Latin-1) or a UID of their own source (study, series, instance, frame of reference),
anywhere in the file, case-insensitively (instances ours withheld count separately).

Each tool runs `--rounds` times, alternating; the best time of each is reported (the
machine is shared: its load changes over minutes), with every round's figures.

    .venv/bin/python benchmarks/anonymize.py [--instances 2000] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from pydicom import Dataset, dcmread

from core.deidentify import Deidentifier, Option
from core.export_instances import deidentify_files
from tests.support.identified_studies import (
    PATIENTS,
    add_identifiers,
    identifiers_of,
)
from tests.support.studies import clone_study

MODALITIES = ("CT", "MR", "CR", "DX", "US")
DICOGNITO = "dicognito==0.19.0"


def build_inputs(count: int) -> tuple[list[bytes], set[bytes], list[set[bytes]]]:
    """`count` Part 10 files full of identifiers; the identifiers as lower-case bytes, and
    each file's own UIDs (study, series, instance, frame of reference)."""
    files: list[bytes] = []
    needles: set[bytes] = set()
    own_uids: list[set[bytes]] = []
    round_ = 0
    while len(files) < count:
        for index, modality in enumerate(MODALITIES):
            patient = PATIENTS[(round_ + index) % len(PATIENTS)]
            for ds in clone_study(modality):
                add_identifiers(ds, patient)
                if modality == "US":
                    ds.BurnedInAnnotation = "NO"
                files.append(encode(ds))
                own_uids.append(
                    {
                        str(ds.get(keyword, "")).encode()
                        for keyword in (
                            "StudyInstanceUID",
                            "SeriesInstanceUID",
                            "SOPInstanceUID",
                            "FrameOfReferenceUID",
                        )
                    }
                    - {b""}
                )
                if len(files) == count:
                    break
            if len(files) == count:
                break
        round_ += 1
    for patient in PATIENTS:
        for value in identifiers_of(patient):
            needles.add(value.lower().encode("utf-8"))
            with contextlib.suppress(UnicodeEncodeError):
                needles.add(value.lower().encode("latin-1"))
    return files, needles, own_uids


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def count_leaks(outputs: list[bytes], needles: set[bytes], own_uids: list[set[bytes]]) -> int:
    """Outputs holding any identifier or any UID of their own source, anywhere in the file."""
    leaks = 0
    for data, uids in zip(outputs, own_uids, strict=True):
        lowered = data.lower()
        leaks += any(needle in lowered for needle in needles | uids)
    return leaks


def run_ours(files: list[bytes], workers: int) -> tuple[float, list[bytes], int]:
    """Outputs in input order (b"" for an instance withheld or excluded)."""
    deidentifier = Deidentifier(
        salt=b"benchmark-salt-32-bytes.........", options=frozenset({Option.MODIFIED_DATES})
    )
    started = time.perf_counter()
    results = deidentify_files(files, deidentifier, workers=workers)
    seconds = time.perf_counter() - started
    withheld = sum(r.status != "exported" for r in results)
    return seconds, [r.data for r in results], withheld


def ensure_dicognito() -> None:
    if importlib.util.find_spec("dicognito") is None:
        print(f"installing {DICOGNITO} into {sys.prefix} for the baseline ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", DICOGNITO], check=True)


def run_dicognito(files: list[bytes]) -> tuple[float, list[bytes]]:
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    outputs = []
    started = time.perf_counter()
    for data in files:
        ds = dcmread(io.BytesIO(data))
        anonymizer.anonymize(ds)
        buffer = io.BytesIO()
        ds.save_as(buffer)
        outputs.append(buffer.getvalue())
    return time.perf_counter() - started, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; best of each")
    args = parser.parse_args()
    ensure_dicognito()
    print(f"building {args.instances} instances with synthetic identifiers ...", flush=True)
    files, needles, own_uids = build_inputs(args.instances)
    megabytes = sum(map(len, files)) / 1e6
    print(f"{len(files)} instances, {megabytes:.0f} MB")

    # Alternating rounds, best of each: the machine is shared, its load varies over minutes.
    ours_best = dicognito_best = float("inf")
    for round_ in range(1, args.rounds + 1):
        dicognito_seconds, dicognito_outputs = run_dicognito(files)
        ours_seconds, ours_outputs, withheld = run_ours(files, args.workers)
        print(
            f"round {round_}: dicognito {len(files) / dicognito_seconds:7.1f} instances/s, "
            f"ours {len(files) / ours_seconds:7.1f} instances/s",
            flush=True,
        )
        ours_best, dicognito_best = (
            min(ours_best, ours_seconds),
            min(dicognito_best, dicognito_seconds),
        )

    ours_rate = len(files) / ours_best
    dicognito_rate = len(files) / dicognito_best
    print(
        f"ours      ({args.workers} processes, with verification): {ours_rate:8.1f} instances/s"
        f"  (best {ours_best:.2f} s; {len(files) - withheld} exported, {withheld} withheld)"
    )
    print(
        f"dicognito (1 process):                     {dicognito_rate:8.1f} instances/s"
        f"  (best {dicognito_best:.2f} s)"
    )
    print(f"ratio ours/dicognito: {ours_rate / dicognito_rate:.2f}x (goal >= 2x)")
    ours_leaks = count_leaks(ours_outputs, needles, own_uids)
    dicognito_leaks = count_leaks(dicognito_outputs, needles, own_uids)
    print(
        "leaks (outputs still holding a source identifier or UID): "
        f"ours {ours_leaks}, dicognito {dicognito_leaks}"
    )


if __name__ == "__main__":
    main()
