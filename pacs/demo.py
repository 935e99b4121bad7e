"""`pacs demo`: put the demo studies into the archive by C-STORE, once.

Studies already complete in the archive are skipped, so running it again
sends nothing and duplicates nothing.
"""

from __future__ import annotations

import datetime
from typing import TextIO

from core.demo import DemoStudy, build_demo_studies
from pacs.settings import Settings
from storage.archive import ArchiveClient
from storage.dicom_sender import DicomSendError, send_datasets


def load_demo(settings: Settings, *, out: TextIO) -> int:
    """Send every demo study the archive lacks; returns the number of instances sent."""
    studies = build_demo_studies(datetime.date.today())
    with ArchiveClient.from_settings(settings) as client:
        missing = [study for study in studies if not is_stored(client, study)]
    if not missing:
        out.write(f"demo: all {len(studies)} demo studies are already in the archive\n")
        return 0
    datasets = [ds for study in missing for ds in study.datasets]
    summary = send_datasets(
        datasets,
        host="127.0.0.1",
        port=settings.orthanc_dicom_port,
        called_aet=settings.orthanc_aet,
        calling_aet="PACS-DEMO",
    )
    for sop_instance_uid, reason in summary.failed:
        out.write(f"demo: {sop_instance_uid} refused: {reason}\n")
    if summary.failed:
        raise DicomSendError(f"the archive refused {len(summary.failed)} demo instances")
    out.write(
        f"demo: sent {summary.sent} instances in {len(missing)} studies "
        f"({len(studies) - len(missing)} already stored)\n"
    )
    return summary.sent


def is_stored(client: ArchiveClient, study: DemoStudy) -> bool:
    """True when the archive holds every instance of the demo study."""
    ids = client.find_study_ids(study.study_instance_uid)
    if not ids:
        return False
    stored = client.get_json(f"/studies/{ids[0]}/statistics")["CountInstances"]
    return stored >= len(study.datasets)
