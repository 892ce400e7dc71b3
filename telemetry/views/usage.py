"""The Usage & Cost Admin API page (sync status, organisation spend, the reconciliation) and the
Console usage export page (upload, and the keys on deprecated or retiring models)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from controlplane.errors import DomainError, TooLarge
from controlplane.models import Scope
from controlplane.web import add_domain_error, require_scope, ui_actor
from telemetry.console_usage import MAX_BYTES, OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from telemetry.models.calls import CallRecord
from telemetry.models.console_usage import ConsoleUsageImport
from telemetry.models.usage_sync import AdminSyncState, BucketWidth, CostBucket, SyncHealth, UsageBucket
from telemetry.reconciliation import Key, reconcile
from telemetry.services.console_usage import import_console_usage
from telemetry.services.usage_sync import STREAMS, is_configured
from telemetry.usage_review import exposed_usage, last_usage_review

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


class ConsoleUsageForm(forms.Form):
    export = forms.FileField(label="Console usage export (CSV)", allow_empty_file=True)


@login_required
def console_usage(request: HttpRequest) -> HttpResponse:
    """Upload the Console's Usage export; see which keys use deprecated or retiring models."""
    form = ConsoleUsageForm()
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        form = ConsoleUsageForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["export"]
            try:
                if upload.size > MAX_BYTES:
                    raise TooLarge(
                        f"The file is {upload.size / 1024 / 1024:.1f} MiB; the limit is "
                        f"{MAX_BYTES // 1024 // 1024} MiB. Export a shorter period from the Console.",
                        code="file_too_large",
                    )
                imported = import_console_usage(
                    filename=upload.name, data=upload.read(), actor=ui_actor(request)
                )
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, f"Imported {imported.rows:,} usage rows from {imported.filename}.")
                return redirect("usage:console")
    review = last_usage_review()
    latest = ConsoleUsageImport.objects.filter(pk=review.import_id).first() if review else None
    context = {
        "form": form,
        "review": review,
        "exposed": exposed_usage(latest) if latest else [],
        "max_mib": MAX_BYTES // 1024 // 1024,
        "required_columns": REQUIRED_COLUMNS,
        "optional_columns": OPTIONAL_COLUMNS,
    }
    return render(request, "telemetry/console_usage.html", context, status=400 if form.errors else 200)
