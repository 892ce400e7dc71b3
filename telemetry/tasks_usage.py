"""Periodic pull of the organisation's usage and cost from the Usage & Cost Admin API."""

from __future__ import annotations

from celery import shared_task

from telemetry.services import usage_sync


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def sync_admin_reports() -> dict[str, object]:
    """Fetch at most one page of the usage or cost report that is due.

    Idempotent: pages are upserted on their dimension columns (unique constraints), and the
    stream's cursor advances only from the value this run read; the pacing slot is claimed by a
    conditional UPDATE, so two workers never both make a request in the same interval.
    """
    result = usage_sync.sync_step()
    return {"outcome": result.outcome, "report": result.report, "width": result.width, "rows": result.rows}
