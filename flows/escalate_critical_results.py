"""Flow `escalate_critical_results`: critical results not acknowledged in time go to the
on-call contact and admins (portal) and to the paging system (webhook, retried)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from config.settings import load_settings
from tasks.critical_results import EscalationOutcome
from tasks.critical_results import escalate_critical_results as escalate


@flow(name="escalate-critical-results")
def escalate_critical_results() -> EscalationOutcome:
    outcome = escalate(load_settings())
    logger = get_run_logger()
    if outcome.escalated:
        logger.warning(f"critical results escalated: {outcome.escalated}")
    for notification_id, error in outcome.failed.items():
        logger.warning(f"critical notification {notification_id} not delivered: {error}")
    return outcome
