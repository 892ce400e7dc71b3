"""Periodic work of the telemetry app (budgets and the Admin API sync have modules of their own)."""

from __future__ import annotations

from celery import shared_task

from telemetry.services.retention import delete_expired_telemetry


@shared_task(acks_late=True, time_limit=600, soft_time_limit=570)
def apply_retention() -> dict[str, int]:
    """Delete call records and samples past their retention.

    Idempotent by construction: it deletes rows older than a cutoff, so a repeated or
    concurrent run finds nothing more to delete (each batch deletes by primary key).
    """
    return delete_expired_telemetry()
