"""Periodic work of the deprecation watch."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from deprecations import services

logger = logging.getLogger(__name__)


# The name beat and queued messages carry: a contract with the broker, kept if the code moves.
@shared_task(name="deprecations.check_deprecations", acks_late=True, time_limit=300, soft_time_limit=270)
def check_deprecations() -> dict[str, list[int]]:
    """Notify the runway thresholds reached today and resolve incidents no longer due.

    Idempotent: each (model, flag, environment, threshold) notice is claimed once by a unique
    constraint, so a repeated or duplicated delivery notifies nothing twice.
    """
    result = services.check_deprecations()
    return {"notified": result.notified, "resolved": result.resolved}


def after_catalog_sync(sender: object, changes: dict[str, list[str]], **kwargs: Any) -> None:
    """Re-check the runways right after a catalog sync changed something (lifecycles, dates).

    The sync runs in a worker or on the command line, never in a request, so the check runs
    here rather than through the broker: the incidents appear as soon as the sync has committed.
    """
    logger.info("catalog synced; checking deprecations", extra={"changed": changes.get("changed", [])})
    services.check_deprecations()
