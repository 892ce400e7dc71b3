"""Periodic and nudged work of budgets and incidents: the budget check and webhook deliveries."""

from __future__ import annotations

from celery import shared_task

from telemetry.services import budgets, webhooks


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def check_budgets() -> dict[str, int]:
    """Open and resolve budget incidents for every enabled flag and environment.

    Idempotent: at most one open incident per (kind, environment, flag) is a partial unique
    constraint, and resolving is a conditional UPDATE of open rows; a repeated run is a no-op.
    """
    result = budgets.check_budgets()
    return {"checked": result.checked, "opened": len(result.opened), "resolved": len(result.resolved)}


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def deliver_webhook(delivery_id: int) -> str | None:
    """Make one attempt at one delivery; the nudge sent when an event is queued.

    Idempotency key: (delivery id, attempt number). The attempt is claimed by a conditional
    UPDATE on a pending, due row at the attempt count read, so duplicates do nothing.
    """
    return webhooks.attempt_delivery(delivery_id=delivery_id)


@shared_task(acks_late=True, time_limit=280, soft_time_limit=250)
def sweep_webhook_deliveries() -> int:
    """Attempt every due delivery: first tries whose nudge was lost, and retries after backoff.

    Idempotent for the same reason as deliver_webhook: each attempt is claimed per row.
    """
    return webhooks.deliver_due()
