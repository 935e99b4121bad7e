"""Prefect task of the critical-results escalation: overdue results escalated, then the
webhook outbox emptied (each message retried, with backoff, until it is delivered)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from prefect import task
from prefect.cache_policies import NO_CACHE

from config.settings import Settings
from storage.critical_results import (
    escalate_overdue,
    list_due_notifications,
    load_notification,
    mark_notification_delivered,
    mark_notification_failed,
)
from storage.database import open_session
from storage.webhooks import WebhookError, post_webhook


@dataclass
class EscalationOutcome:
    escalated: list[int] = field(default_factory=list)  # critical result ids
    delivered: int = 0
    failed: dict[int, str] = field(default_factory=dict)  # notification id -> why


@task(cache_policy=NO_CACHE)
def escalate_critical_results(
    settings: Settings, now: datetime.datetime | None = None
) -> EscalationOutcome:
    """One pass at `now` (the clock, unless a test gives it): escalations committed before
    any message is sent, each delivery recorded in a transaction of its own."""
    now = now or datetime.datetime.now(datetime.UTC)
    outcome = EscalationOutcome()
    webhook = settings.critical_webhook_url
    with open_session(settings.database_url) as session:
        escalated = escalate_overdue(
            session, now, oncall=settings.critical_oncall, webhook=bool(webhook)
        )
        outcome.escalated = [result.id for result in escalated]
    if not webhook:
        return outcome
    with open_session(settings.database_url) as session:
        due = list_due_notifications(session, now)
    for notification_id in due:
        with open_session(settings.database_url) as session:
            notification = load_notification(session, notification_id)
            try:
                post_webhook(webhook, notification.payload, settings.critical_webhook_secret)
            except WebhookError as error:
                mark_notification_failed(session, notification, str(error), now)
                outcome.failed[notification_id] = str(error)
            else:
                mark_notification_delivered(session, notification, now)
                outcome.delivered += 1
    return outcome
