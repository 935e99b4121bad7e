"""Flow `send_results`: final reports and addenda of ordered studies to the hospital as ORU^R01."""

from __future__ import annotations

from prefect import flow, get_run_logger

from config.settings import load_settings
from tasks.results import ResultsOutcome, send_pending_results


@flow(name="send-results")
def send_results() -> ResultsOutcome:
    """Every pending result, oldest first; nothing to do while PACS_HL7_RESULTS_HOST is unset."""
    outcome = send_pending_results(load_settings())
    logger = get_run_logger()
    if outcome.sent:
        logger.info(f"{outcome.sent} results sent")
    for result_id, error in outcome.failed.items():
        logger.warning(f"result {result_id} not acknowledged: {error}")
    return outcome
