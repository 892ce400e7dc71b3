"""Admin API usage and cost reports: row builders and paginated, grouped bucket pages."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from demo.fake_anthropic.wire import JSON, ApiError, Query, int_param, one, time_param


@dataclass(frozen=True)
class ReportKind:
    limits: dict[str, tuple[int, int]]  # bucket_width -> (default, maximum) buckets per page
    groups: dict[str, tuple[str, ...]]  # group_by value -> result fields it populates
    measures: frozenset[str]  # summed when rows merge; every other field is a dimension
    filters: dict[str, str]  # array query param -> result field it restricts


USAGE = ReportKind(
    limits={"1d": (7, 31), "1h": (24, 168), "1m": (60, 1440)},
    groups={
        name: (name,)
        for name in (
            "api_key_id",
            "workspace_id",
            "model",
            "service_tier",
            "context_window",
            "inference_geo",
            "speed",
            "account_id",
            "service_account_id",
        )
    },
    measures=frozenset(
        {
            "uncached_input_tokens",
            "cache_read_input_tokens",
            "cache_creation",
            "output_tokens",
            "server_tool_use",
        }
    ),
    filters={
        "api_key_ids[]": "api_key_id",
        "workspace_ids[]": "workspace_id",
        "models[]": "model",
        "service_tiers[]": "service_tier",
        "context_window[]": "context_window",
        "inference_geos[]": "inference_geo",
        "speeds[]": "speed",
    },
)
COST = ReportKind(
    limits={"1d": (7, 31)},
    # Grouping by description is what fills in the per-line-item fields of a cost row.
    groups={
        "workspace_id": ("workspace_id",),
        "description": (
            "description",
            "cost_type",
            "token_type",
            "model",
            "service_tier",
            "context_window",
            "inference_geo",
        ),
    },
    measures=frozenset({"amount"}),
    filters={},
)


def usage_result(**fields: Any) -> JSON:
    """Build a usage row: zero counters and null dimensions, overridden by `fields`."""
    row: JSON = {
        "uncached_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 0,
        "server_tool_use": {"web_search_requests": 0},
    }
    return row | dict.fromkeys(USAGE.groups) | fields


def cost_result(amount: str, **fields: Any) -> JSON:
    """Build a cost row; `amount` is a decimal string of cents ("123.45" is $1.2345)."""
    dimensions = dict.fromkeys(field for group in COST.groups.values() for field in group)
    return {"amount": amount, "currency": "USD"} | dimensions | fields


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def report_bucket(
    starting_at: datetime, results: list[JSON], *, width: timedelta = timedelta(days=1)
) -> JSON:
    return {
        "starting_at": rfc3339(starting_at),
        "ending_at": rfc3339(starting_at + width),
        "results": results,
    }


def report_page(kind: ReportKind, buckets: list[JSON], query: Query) -> JSON:
    """Answer one report request: time window, bucket pagination, filters and group_by."""
    starting_at, ending_at = time_param(query, "starting_at"), time_param(query, "ending_at")
    if starting_at is None:
        raise ApiError(400, "starting_at: Field required")
    width = one(query, "bucket_width") or "1d"
    if width not in kind.limits:
        raise ApiError(400, f"bucket_width: Input should be one of {sorted(kind.limits)}")
    default_limit, max_limit = kind.limits[width]
    limit = int_param(query, "limit", default=default_limit, maximum=max_limit)
    group_by = query.get("group_by[]", [])
    if unknown := set(group_by) - set(kind.groups):
        raise ApiError(400, f"group_by: unknown value(s) {sorted(unknown)}")
    kept = {field for name in group_by for field in kind.groups[name]}
    nulled = {field for fields in kind.groups.values() for field in fields} - kept

    in_window = sorted(
        (
            bucket
            for bucket in buckets
            if _start(bucket) >= starting_at
            and (ending_at is None or datetime.fromisoformat(bucket["ending_at"]) <= ending_at)
        ),
        key=_start,
    )
    offset = 0
    if (token := one(query, "page")) is not None:
        resume_at = _decode_page(token)
        offset = next(
            (i for i, bucket in enumerate(in_window) if _start(bucket) >= resume_at), len(in_window)
        )
    has_more = offset + limit < len(in_window)
    data = []
    for bucket in in_window[offset : offset + limit]:
        results = [
            row
            for row in bucket["results"]
            if all(row.get(field) in query[param] for param, field in kind.filters.items() if param in query)
        ]
        data.append(bucket | {"results": _group(results, nulled, kind.measures)})
    return {
        "data": data,
        "has_more": has_more,
        "next_page": _encode_page(in_window[offset + limit]) if has_more else None,
    }


def _start(bucket: JSON) -> datetime:
    return datetime.fromisoformat(bucket["starting_at"])


def _encode_page(next_bucket: JSON) -> str:
    return "page_" + base64.urlsafe_b64encode(next_bucket["starting_at"].encode()).decode()


def _decode_page(token: str) -> datetime:
    try:
        return datetime.fromisoformat(base64.urlsafe_b64decode(token.removeprefix("page_")).decode())
    except (ValueError, binascii.Error):
        raise ApiError(400, "page: Invalid page token") from None


def _group(results: list[JSON], nulled: set[str], measures: frozenset[str]) -> list[JSON]:
    merged: dict[str, JSON] = {}
    for result in results:
        row = {key: None if key in nulled else value for key, value in result.items()}
        dimensions = json.dumps({k: v for k, v in row.items() if k not in measures}, sort_keys=True)
        if (seen := merged.get(dimensions)) is None:
            merged[dimensions] = row
        else:
            merged[dimensions] = seen | {k: _add(seen[k], row[k]) for k in measures if k in row}
    return list(merged.values())


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, dict):
        return {key: _add(value, right.get(key, 0)) for key, value in left.items()}
    if isinstance(left, str):  # cost amounts are decimal strings
        return str(Decimal(left) + Decimal(right))
    return left + right
