"""Flow `export_research`: an approved cohort, de-identified, verified and delivered.

One task per batch of instances (never per instance), run two at a time so one batch's
archive reads overlap another's de-identification, which itself runs across `workers`
processes: more workers (or more Prefect workers, each running exports) make it faster.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from config.settings import load_settings
from tasks.exports import (
    deidentify_batch,
    plan_export,
    record_export_result,
    send_to_research_archive,
    write_export_zip,
)


@dataclass(frozen=True)
class ExportOutcome:
    export_id: int
    destination: str
    exported: int
    excluded: int
    withheld: int


@flow(name="export-research", task_runner=ThreadPoolTaskRunner(max_workers=2))
def export_research(
    export_id: int, out_path: str | None = None, batch_size: int = 250, workers: int = 2
) -> ExportOutcome:
    """Run export `export_id` (approved); a re-run gives the same pseudonyms and UIDs."""
    settings = load_settings()
    plan = plan_export(settings, export_id)
    summaries = []
    try:
        batches = [
            plan.instance_ids[start : start + batch_size]
            for start in range(0, len(plan.instance_ids), batch_size)
        ]
        # quote(): Prefect would otherwise walk every instance id looking for futures.
        futures = [
            deidentify_batch.submit(settings, quote(plan), quote(batch), workers)
            for batch in batches
        ]
        summaries = [summary for future in futures for summary in future.result()]
        if settings.research_orthanc_url and not out_path:
            destination = send_to_research_archive(settings, plan, quote(summaries))
        else:
            destination = write_export_zip(settings, plan, quote(summaries), out_path)
    except Exception as error:
        record_export_result(
            settings, plan, quote(summaries), "", f"{type(error).__name__}: {error}"
        )
        raise
    record_export_result(settings, plan, quote(summaries), destination, "")
    counts = {
        status: sum(s.status == status for s in summaries)
        for status in ("exported", "excluded", "withheld")
    }
    return ExportOutcome(export_id, destination, **counts)
