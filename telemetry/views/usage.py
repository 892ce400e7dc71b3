"""The Usage & Cost Admin API page: sync status, organisation spend and the reconciliation."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from telemetry.models.calls import CallRecord
from telemetry.models.usage_sync import AdminSyncState, BucketWidth, CostBucket, SyncHealth, UsageBucket
from telemetry.reconciliation import Key, reconcile
from telemetry.services.usage_sync import STREAMS, is_configured

DAY_CHOICES = (7, 14, 30, 90)
MICRO = Decimal(1_000_000)
# Worst first: the page's headline is the worst state of any stream.
HEALTH_ORDER = (
    SyncHealth.UNAUTHORISED,
    SyncHealth.RATE_LIMITED,
    SyncHealth.FAILED,
    SyncHealth.NEVER,
    SyncHealth.OK,
)


def _days(request: HttpRequest) -> int:
    raw = request.GET.get("days", "")
    return int(raw) if raw.isdigit() and int(raw) in DAY_CHOICES else 30


def stream_rows() -> list[dict[str, Any]]:
    states = {(s.report, s.bucket_width): s for s in AdminSyncState.objects.all()}
    return [
        {"report": stream.report, "width": stream.width, "state": states.get((stream.report, stream.width))}
        for stream in STREAMS
    ]


def overall_health(rows: list[dict[str, Any]]) -> str:
    if not is_configured():
        return "unconfigured"
    seen = {row["state"].health if row["state"] else SyncHealth.NEVER for row in rows}
    return next(str(health) for health in HEALTH_ORDER if health in seen)


def our_cost(start: date, end: date) -> dict[Key, Decimal]:
    """Our calls' cost per UTC day and model; Priority Tier is left out (the report never has it)."""
    calls = (
        CallRecord.objects.filter(
            timestamp__date__gte=start, timestamp__date__lt=end, cost_micro_usd__isnull=False
        )
        .exclude(service_tier__startswith="priority")
        .annotate(day=TruncDate("timestamp"))
        .values("day", "model")
        .annotate(cost=Sum("cost_micro_usd"))
    )
    return {(row["day"], row["model"]): Decimal(row["cost"] or 0) / MICRO for row in calls}


def reported_cost(start: date, end: date) -> dict[Key, Decimal]:
    rows = (
        CostBucket.objects.filter(date__gte=start, date__lt=end)
        .values("date", "model")
        .annotate(cost=Sum("amount_usd"))
    )
    return {(row["date"], row["model"]): row["cost"] or Decimal(0) for row in rows}


@login_required
def usage_status(request: HttpRequest) -> HttpResponse:
    days = _days(request)
    today = timezone.now().date()
    since = today - timedelta(days=days)
    costs = CostBucket.objects.filter(date__gte=since)
    rows = stream_rows()
    threshold = Decimal(str(settings.FLAGSTAFF_RECONCILIATION_THRESHOLD_PERCENT))
    # Complete days only: today's report and telemetry are both still arriving.
    reconciliation = reconcile(
        our_cost(since, today), reported_cost(since, today), threshold_percent=threshold
    )
    context = {
        "configured": is_configured(),
        "health": overall_health(rows),
        "streams": rows,
        "days": days,
        "day_choices": DAY_CHOICES,
        "since": since,
        "spend_total": costs.aggregate(total=Sum("amount_usd"))["total"],
        "spend_by_model": costs.values("model").annotate(total=Sum("amount_usd")).order_by("-total", "model"),
        "spend_by_workspace": costs.values("workspace_id")
        .annotate(total=Sum("amount_usd"))
        .order_by("-total", "workspace_id"),
        "tokens_by_model": UsageBucket.objects.filter(
            bucket_width=BucketWidth.DAY, starting_at__date__gte=since
        )
        .values("model")
        .annotate(
            uncached=Sum("uncached_input_tokens"),
            cache_read=Sum("cache_read_input_tokens"),
            cache_write=Sum("cache_creation_5m_input_tokens") + Sum("cache_creation_1h_input_tokens"),
            output=Sum("output_tokens"),
        )
        .order_by("-output", "model"),
        "reconciliation": reconciliation,
        "flagged": sum(row.flagged for row in reconciliation),
        "threshold": threshold,
    }
    return render(request, "telemetry/usage.html", context)
