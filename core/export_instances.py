"""One source instance through the research export: decide, de-identify, verify.

`deidentify_instance` takes the Part 10 bytes of an archived instance and gives either the
de-identified file or the reason it is held back: burned-in annotation, a structured report
without the clean-structured-content option, an unreadable file, or a source identifier
still present after de-identification (the verification runs on every instance, in the
flow, not only in the tests). `deidentify_files` runs a batch of them in a process pool.
"""

from __future__ import annotations

import io
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from core.deidentify import Deidentifier, Option, patient_key
from core.leaks import collect_identifiers, find_leaks, make_scrubber, raw_name_bytes

# Secondary capture storage (all kinds) and ultrasound (single and multi-frame), whose
# pixels often carry burned-in text: excluded unless Burned In Annotation says NO.
BURN_IN_PRONE_SOP_PREFIXES = ("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.6.")
BURN_IN_PRONE_MODALITIES = frozenset({"US", "SC", "OT"})
SR_SOP_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
CHUNK_SIZE = 32  # instances a process takes at a time


@dataclass(frozen=True)
class InstanceResult:
    """A de-identified file (`data`), or why there is none (`reason`).

    `status` is `exported`, `excluded` (by policy: burned-in annotation, reports) or
    `withheld` (failed verification or could not be read). The UIDs are the export's own.
    """

    status: str
    reason: str = ""
    data: bytes = b""
    pseudonym: str = ""
    shift_days: int = 0
    patient_key: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    modality: str = ""


def exclusion_reason(ds: object, options: frozenset[Option]) -> str:
    """Why policy keeps this instance out of the export, or '' to export it."""
    sop_class = str(getattr(ds, "SOPClassUID", ""))
    modality = str(getattr(ds, "Modality", "")).upper()
    burned_in = str(getattr(ds, "BurnedInAnnotation", "")).upper()
    if burned_in == "YES":
        return "burned-in annotation (Burned In Annotation = YES)"
    prone = sop_class.startswith(BURN_IN_PRONE_SOP_PREFIXES) or modality in (
        BURN_IN_PRONE_MODALITIES
    )
    if prone and burned_in != "NO":
        kind = modality or "secondary capture"
        return f"may carry burned-in annotation ({kind} without Burned In Annotation = NO)"
    if sop_class.startswith(SR_SOP_PREFIX) and Option.STRUCTURED_CONTENT not in options:
        return "structured report (included only with the structured-content option)"
    return ""


def deidentify_instance(data: bytes, deidentifier: Deidentifier) -> InstanceResult:
    """De-identify one Part 10 file and verify that none of its identifiers remains."""
    try:
        ds = dcmread(io.BytesIO(data))
        sop_uid = str(ds.SOPInstanceUID)
    except (InvalidDicomError, AttributeError, ValueError, EOFError) as error:
        return InstanceResult("withheld", f"unreadable: {type(error).__name__}")
    new_uids = {
        "study_uid": deidentifier.new_uid(str(ds.get("StudyInstanceUID", ""))),
        "series_uid": deidentifier.new_uid(str(ds.get("SeriesInstanceUID", ""))),
        "sop_uid": deidentifier.new_uid(sop_uid),
        "modality": str(ds.get("Modality", "")),
    }
    reason = exclusion_reason(ds, deidentifier.options)
    if reason:
        identity = deidentifier.identity(patient_key(ds))
        return InstanceResult(
            "excluded",
            reason,
            pseudonym=identity.pseudonym,
            shift_days=identity.shift_days,
            patient_key=patient_key(ds),
            **new_uids,
        )
    key = patient_key(ds)
    identifiers = collect_identifiers(ds, deidentifier.table)
    raw_names = raw_name_bytes(ds)
    identity = deidentifier.deidentify(ds, make_scrubber(identifiers))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    encoded = out.getvalue()
    common = {
        "pseudonym": identity.pseudonym,
        "shift_days": identity.shift_days,
        "patient_key": key,
        **new_uids,
    }
    leaks = find_leaks(encoded, ds, identifiers, raw_names)
    if leaks:
        return InstanceResult(
            "withheld",
            f"{len(leaks)} source identifier(s) still present after de-identification",
            **common,
        )
    return InstanceResult("exported", data=encoded, **common)


def deidentify_batch(files: Sequence[bytes], deidentifier: Deidentifier) -> list[InstanceResult]:
    return [deidentify_instance(data, deidentifier) for data in files]


def deidentify_files(
    files: Sequence[bytes], deidentifier: Deidentifier, *, workers: int = 2
) -> list[InstanceResult]:
    """A batch across `workers` processes (order kept); one process does it inline.

    The workers are forked with the batch in their memory (no copy through a pipe: only
    index ranges go to them, results come back); small ranges, a few per worker, keep them
    evenly busy.
    """
    if workers <= 1 or len(files) < 2:
        return deidentify_batch(files, deidentifier)
    size = max(1, min(CHUNK_SIZE, -(-len(files) // (workers * 4))))
    starts = range(0, len(files), size)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=receive_batch,
        initargs=(files, deidentifier),
    ) as pool:
        parts = pool.map(deidentify_range, starts, [start + size for start in starts])
        return [result for part in parts for result in part]


# A forked worker's batch, set once by `receive_batch` when the process starts.
WORKER_BATCH: dict[str, object] = {}


def receive_batch(files: Sequence[bytes], deidentifier: Deidentifier) -> None:
    WORKER_BATCH.update(files=files, deidentifier=deidentifier)


def deidentify_range(start: int, end: int) -> list[InstanceResult]:
    files = WORKER_BATCH["files"]
    return deidentify_batch(files[start:end], WORKER_BATCH["deidentifier"])  # type: ignore[index,arg-type]
