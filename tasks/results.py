"""Prefect task that empties the ORU^R01 outbox towards `PACS_HL7_RESULTS_HOST`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from prefect import task
from prefect.cache_policies import NO_CACHE

from config.settings import Settings
from core.hl7_messages import MessageRejected, read_ack
from storage.database import open_session
from storage.hl7_client import Hl7SendError, send_message
from storage.results_out import (
    build_result_message,
    enqueue_results,
    list_pending_results,
    mark_result_failed,
    mark_result_sent,
)

ACCEPTED = ("AA", "CA")


@dataclass
class ResultsOutcome:
    sent: int = 0
    failed: dict[int, str] = field(default_factory=dict)  # result id -> why


@task(cache_policy=NO_CACHE)
def send_pending_results(settings: Settings, limit: int = 100) -> ResultsOutcome:
    """Queue new final reports and addenda, then send each pending one, oldest first, one
    transaction a message. The hospital unreachable stops the run (the next one resumes);
    a result it refuses keeps its reason and is offered again next time."""
    outcome = ResultsOutcome()
    if not settings.hl7_results_host:
        return outcome
    now = datetime.datetime.now(datetime.UTC)
    with open_session(settings.database_url) as session:
        enqueue_results(session, now)
    with open_session(settings.database_url) as session:
        pending = list_pending_results(session, limit=limit)
    for result_id in pending:
        with open_session(settings.database_url) as session:
            message = build_result_message(session, result_id, timezone=settings.timezone, now=now)
        try:
            answer = send_message(
                settings.hl7_results_host, settings.hl7_results_port, message, timeout=30
            )
            ack = read_ack(answer)
        except (Hl7SendError, MessageRejected) as error:
            with open_session(settings.database_url) as session:
                mark_result_failed(session, result_id, str(error))
            outcome.failed[result_id] = str(error)
            if isinstance(error, Hl7SendError):
                break
            continue
        with open_session(settings.database_url) as session:
            if ack.code in ACCEPTED:
                mark_result_sent(session, result_id, datetime.datetime.now(datetime.UTC))
                outcome.sent += 1
            else:
                reason = f"{ack.code}: {ack.text}"
                mark_result_failed(session, result_id, reason)
                outcome.failed[result_id] = reason
    return outcome
