"""Storing the Admin API's pages: usage and cost buckets upserted, so a page fetched again never
duplicates a row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.db.models import CharField, Model

from telemetry.models.usage_sync import COST_DIMENSIONS, USAGE_DIMENSIONS, CostBucket, UsageBucket
from telemetry.services.usage_sync.admin_api import AdminApiError


def _dimensions(model: type[Model], names: Iterable[str], result: Mapping[str, Any]) -> dict[str, str]:
    """The result's value of each dimension as its column holds it: "" for null, cut to fit."""
    return {name: _dim(result.get(name), _max_length(model, name)) for name in names}


def _max_length(model: type[Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, CharField), f"{name} is not a text dimension"
    assert field.max_length is not None
    return field.max_length


def _dim(value: Any, length: int) -> str:
    return "" if value is None else str(value)[:length]


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _moment(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise AdminApiError(200, f"Unexpected bucket time {value!r}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


USAGE_COUNTERS = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
    "output_tokens",
    "web_search_requests",
)


def _usage_counters(result: Mapping[str, Any]) -> dict[str, int]:
    cache_creation = result.get("cache_creation") or {}
    server_tools = result.get("server_tool_use") or {}
    return {
        "uncached_input_tokens": _count(result.get("uncached_input_tokens")),
        "cache_read_input_tokens": _count(result.get("cache_read_input_tokens")),
        "cache_creation_5m_input_tokens": _count(cache_creation.get("ephemeral_5m_input_tokens")),
        "cache_creation_1h_input_tokens": _count(cache_creation.get("ephemeral_1h_input_tokens")),
        "output_tokens": _count(result.get("output_tokens")),
        "web_search_requests": _count(server_tools.get("web_search_requests")),
    }


def store_usage_page(*, width: str, data: list[dict[str, Any]], synced_at: datetime) -> int:
    """Upsert the page's buckets; rows of those buckets that the API no longer reports go."""
    rows: dict[tuple[Any, ...], UsageBucket] = {}
    starts = []
    for bucket in data:
        starting_at, ending_at = _moment(bucket.get("starting_at")), _moment(bucket.get("ending_at"))
        starts.append(starting_at)
        for result in bucket.get("results") or []:
            dims = _dimensions(UsageBucket, USAGE_DIMENSIONS, result)
            key = (starting_at, *dims.values())
            counters = _usage_counters(result)
            if (seen := rows.get(key)) is not None:  # the same dimensions twice: add them up
                for name, value in counters.items():
                    setattr(seen, name, getattr(seen, name) + value)
                continue
            rows[key] = UsageBucket(
                bucket_width=width,
                starting_at=starting_at,
                ending_at=ending_at,
                synced_at=synced_at,
                **dims,
                **counters,
            )
    with transaction.atomic():
        UsageBucket.objects.bulk_create(
            list(rows.values()),
            batch_size=500,
            update_conflicts=True,
            unique_fields=["bucket_width", "starting_at", *USAGE_DIMENSIONS],
            update_fields=["ending_at", "synced_at", *USAGE_COUNTERS],
        )
        # Rows of these buckets not touched by this upsert are gone from the report.
        UsageBucket.objects.filter(
            bucket_width=width, starting_at__in=starts, synced_at__lt=synced_at
        ).delete()
    return len(rows)


def _amount_usd(result: Mapping[str, Any]) -> Decimal:
    """The API gives cents as a decimal string ("123.45" is $1.2345)."""
    try:
        cents = Decimal(str(result.get("amount")))
    except InvalidOperation:
        raise AdminApiError(200, f"Unexpected cost amount {result.get('amount')!r}.") from None
    if not cents.is_finite():
        raise AdminApiError(200, f"Unexpected cost amount {result.get('amount')!r}.")
    return cents / 100


def store_cost_page(*, data: list[dict[str, Any]], synced_at: datetime) -> int:
    rows: dict[tuple[Any, ...], CostBucket] = {}
    dates = []
    for bucket in data:
        day = _moment(bucket.get("starting_at")).date()
        dates.append(day)
        for result in bucket.get("results") or []:
            dims = _dimensions(
                CostBucket, COST_DIMENSIONS, {**result, "currency": result.get("currency") or "USD"}
            )
            key = (day, *dims.values())
            amount = _amount_usd(result)
            if (seen := rows.get(key)) is not None:
                seen.amount_usd += amount
                continue
            rows[key] = CostBucket(date=day, amount_usd=amount, synced_at=synced_at, **dims)
    with transaction.atomic():
        CostBucket.objects.bulk_create(
            list(rows.values()),
            batch_size=500,
            update_conflicts=True,
            unique_fields=["date", *COST_DIMENSIONS],
            update_fields=["amount_usd", "synced_at"],
        )
        CostBucket.objects.filter(date__in=dates, synced_at__lt=synced_at).delete()
    return len(rows)
