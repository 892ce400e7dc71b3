"""Every task of the telemetry app: retention, the budget check, webhook deliveries and the
Usage & Cost Admin API sync. Thin: each loads nothing itself and calls one service.

Each task's `name=` is the name beat entries and queued messages carry; it is a contract with
messages already in the broker, so it stays put when the code moves.
"""

from __future__ import annotations

from celery import shared_task

from telemetry.services import usage_sync, webhooks
from telemetry.services.incidents import check_budgets as check_all_budgets
from telemetry.services.retention import delete_expired_telemetry


@shared_task(name="telemetry.tasks.apply_retention", acks_late=True, time_limit=600, soft_time_limit=570)
def apply_retention() -> dict[str, int]:
    """Delete call records and samples past their retention.

    Idempotent by construction: it deletes rows older than a cutoff, so a repeated or
    concurrent run finds nothing more to delete (each batch deletes by primary key).
    """
    return delete_expired_telemetry()


@shared_task(
    name="telemetry.tasks_budgets.check_budgets", acks_late=True, time_limit=120, soft_time_limit=100
)
def check_budgets() -> dict[str, int]:
    """Open and resolve budget incidents for every enabled flag and environment.

    Idempotent: at most one open incident per (kind, environment, flag) is a partial unique
    constraint, and resolving is a conditional UPDATE of open rows; a repeated run is a no-op.
    """
    result = check_all_budgets()
    return {"checked": result.checked, "opened": len(result.opened), "resolved": len(result.resolved)}


@shared_task(
    name="telemetry.tasks_budgets.deliver_webhook", acks_late=True, time_limit=60, soft_time_limit=50
)
def deliver_webhook(delivery_id: int) -> str | None:
    """Make one attempt at one delivery; the nudge sent when an event is queued.

    Idempotency key: (delivery id, attempt number). The attempt is claimed by a conditional
    UPDATE on a pending, due row at the attempt count read, so duplicates do nothing.
    """
    return webhooks.attempt_delivery(delivery_id=delivery_id)


@shared_task(
    name="telemetry.tasks_budgets.sweep_webhook_deliveries",
    acks_late=True,
    time_limit=280,
    soft_time_limit=250,
)
def sweep_webhook_deliveries() -> int:
    """Attempt every due delivery: first tries whose nudge was lost, and retries after backoff.

    Idempotent for the same reason as deliver_webhook: each attempt is claimed per row.
    """
    return webhooks.deliver_due()


@shared_task(
    name="telemetry.tasks_usage.sync_admin_reports", acks_late=True, time_limit=120, soft_time_limit=100
)
def sync_admin_reports() -> dict[str, object]:
    """Fetch at most one page of the usage or cost report that is due.

    Idempotent: pages are upserted on their dimension columns (unique constraints), and the
    stream's cursor advances only from the value this run read; the pacing slot is claimed by a
    conditional UPDATE, so two workers never both make a request in the same interval.
    """
    result = usage_sync.sync_step()
    return {"outcome": result.outcome, "report": result.report, "width": result.width, "rows": result.rows}
