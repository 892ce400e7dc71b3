"""Periodic work of the flags app."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from controlplane.audit import Actor
from flags import services

logger = logging.getLogger(__name__)


# The name beat and queued messages carry: a contract with the broker, kept if the code moves.
@shared_task(name="flags.tasks.sync_models", acks_late=True, time_limit=120, soft_time_limit=100)
def sync_models() -> dict[str, list[str]] | None:
    """Refresh the model catalog from the Models API.

    Idempotent by content: store_models writes only differences, so a repeated or duplicated
    delivery changes nothing.
    """
    if not settings.ANTHROPIC_API_KEY:
        logger.info("model sync skipped: ANTHROPIC_API_KEY is not set")
        return None
    return services.refresh_model_catalog(actor=Actor.system("celery:sync_models"))
