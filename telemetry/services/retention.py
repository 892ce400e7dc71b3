"""Retention: raw call records and samples are deleted after their time; rollups stay."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from telemetry.models import CallRecord, Sample

logger = logging.getLogger(__name__)

# One run deletes at most this many batches per table; the next run goes on from there, so a
# large backlog never holds a worker past its time limit.
MAX_BATCHES_PER_RUN = 200


def delete_expired_telemetry(*, now: datetime | None = None, batch_size: int | None = None) -> dict[str, int]:
    """Delete samples and call records older than their retention, in short transactions.

    Safe to repeat and to run concurrently with ingest: each batch deletes rows by primary
    key, and a row already gone is simply not deleted again.
    """
    now = now or timezone.now()
    size = batch_size or settings.FLAGSTAFF_TELEMETRY_RETENTION_BATCH
    sample_cutoff = now - timedelta(days=settings.FLAGSTAFF_SAMPLE_RETENTION_DAYS)
    call_cutoff = now - timedelta(days=settings.FLAGSTAFF_TELEMETRY_RETENTION_DAYS)
    samples = _delete_in_batches(Sample.objects.filter(created_at__lt=sample_cutoff), size)
    calls = _delete_in_batches(CallRecord.objects.filter(timestamp__lt=call_cutoff), size)
    logger.info("telemetry retention: deleted %d call records and %d samples", calls, samples)
    return {"calls": calls, "samples": samples}


def _delete_in_batches(queryset: models.QuerySet[CallRecord] | models.QuerySet[Sample], size: int) -> int:
    model = queryset.model
    deleted = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        ids = list(queryset.order_by().values_list("pk", flat=True)[:size])
        if not ids:
            break
        with transaction.atomic():
            # The samples of deleted calls go with them (CASCADE); only the model's own rows count.
            _, per_model = model._default_manager.filter(pk__in=ids).delete()
        deleted += per_model.get(model._meta.label, 0)
    return deleted
