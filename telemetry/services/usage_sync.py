"""Pull the organisation's usage and cost from Anthropic's Usage & Cost Admin API.

Four streams: the usage report at 1m, 1h and 1d (grouped by every dimension we keep) and the
cost report at 1d (grouped by workspace and description). `sync_step` makes at most one HTTP
request: it picks the stream that is due (a pass under way first), takes the pacing slot, and
fetches one page. A pass covers [window_start, window_end) page by page, the next page token
kept in the stream's row, so a failure resumes from the failed page. Each new pass starts a
little before the previous one ended, because data lands late, and pages are upserted, so
re-fetching never duplicates.

Pacing: at most one request per FLAGSTAFF_ADMIN_SYNC_MIN_INTERVAL_SECONDS across all streams
(the Admin API asks for about one a minute sustained). The slot is taken by one conditional
UPDATE that moves every stream's `next_allowed_at` forward only if none is in the future;
a 429 pushes them all to its retry-after.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from telemetry.models.usage_sync import (
    AdminReport,
    AdminSyncState,
    BucketWidth,
    CostBucket,
    SyncHealth,
    UsageBucket,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
# The reference's examples of these endpoints all use the old version; their field names under
# 2026-10-21 are unconfirmed, so the old one is pinned and the parsing ignores unknown keys.
ADMIN_API_VERSION = "2023-06-01"
USAGE_PATH = "/v1/organizations/usage_report/messages"
COST_PATH = "/v1/organizations/cost_report"
USAGE_GROUP_BY = ("model", "workspace_id", "api_key_id", "service_tier", "context_window", "inference_geo")
COST_GROUP_BY = ("workspace_id", "description")
DEFAULT_RETRY_AFTER = timedelta(seconds=60)
MAX_FAILURE_BACKOFF = timedelta(hours=1)
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Stream:
    report: str
    width: str
    path: str
    group_by: tuple[str, ...]
    limit: int  # buckets per page: the API's maximum for the width
    step: timedelta  # one bucket
    lookback: timedelta  # how far before the last pass's end a new pass starts
    refresh: timedelta  # time between passes
    max_backfill: timedelta | None  # cap on the first pass, whatever the backfill setting


STREAMS = (
    Stream(
        AdminReport.USAGE, BucketWidth.MINUTE, USAGE_PATH, USAGE_GROUP_BY, 1440,
        timedelta(minutes=1), timedelta(hours=1), timedelta(minutes=5), timedelta(days=1),
    ),
    Stream(
        AdminReport.USAGE, BucketWidth.HOUR, USAGE_PATH, USAGE_GROUP_BY, 168,
        timedelta(hours=1), timedelta(hours=6), timedelta(minutes=15), None,
    ),
    Stream(
        AdminReport.USAGE, BucketWidth.DAY, USAGE_PATH, USAGE_GROUP_BY, 31,
        timedelta(days=1), timedelta(days=2), timedelta(hours=1), None,
    ),
    Stream(
        AdminReport.COST, BucketWidth.DAY, COST_PATH, COST_GROUP_BY, 31,
        timedelta(days=1), timedelta(days=3), timedelta(hours=1), None,
    ),
)  # fmt: skip
STREAM_BY_KEY = {(stream.report, stream.width): stream for stream in STREAMS}


def admin_key() -> str:
    return str(settings.ANTHROPIC_ADMIN_API_KEY or "")


def is_configured() -> bool:
    return bool(admin_key())


def ensure_states() -> list[AdminSyncState]:
    """One state row per stream (created on first use; concurrent creators collide harmlessly)."""
    AdminSyncState.objects.bulk_create(
        [AdminSyncState(report=s.report, bucket_width=s.width) for s in STREAMS], ignore_conflicts=True
    )
    known = {(s.report, s.width) for s in STREAMS}
    return [state for state in AdminSyncState.objects.all() if (state.report, state.bucket_width) in known]


# HTTP


class AdminApiError(Exception):
    def __init__(self, status: int | None, message: str, *, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Never re-send the Admin key to wherever a redirect points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


def _retry_after(value: str | None) -> timedelta:
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        return timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    return max(timedelta(0), moment - timezone.now())


def _error_text(status: int, raw: bytes) -> str:
    try:
        error = json.loads(raw)["error"]
        return f"{status} {error.get('type', 'error')}: {error.get('message', '')}".strip()
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"


def fetch_page(stream: Stream, params: Mapping[str, Any]) -> dict[str, Any]:
    """GET one page of a report; raises AdminApiError on anything but a JSON 200."""
    base = (settings.ANTHROPIC_BASE_URL or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}{stream.path}?{urlencode(params, doseq=True)}"
    request = urllib.request.Request(  # noqa: S310 - the base URL is operator configuration
        url,
        headers={
            "x-api-key": admin_key(),
            "anthropic-version": ADMIN_API_VERSION,
            "accept": "application/json",
            "user-agent": "Flagstaff-UsageSync/1",
        },
    )
    try:
        with _opener.open(request, timeout=settings.ANTHROPIC_TIMEOUT_SECONDS) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
        retry = _retry_after(error.headers.get("retry-after")) if error.code == 429 else None
        raise AdminApiError(error.code, _error_text(error.code, body), retry_after=retry) from None
    except (urllib.error.URLError, OSError) as error:
        raise AdminApiError(None, f"{type(error).__name__}: {getattr(error, 'reason', error)}") from None
    try:
        page = json.loads(raw)
    except ValueError:
        raise AdminApiError(200, "The response is not JSON.") from None
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise AdminApiError(200, "The response has no 'data' list.")
    return page


# Storing pages


def _dim(value: Any, length: int = 100) -> str:
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


USAGE_DIMENSION_LENGTHS = {
    "model": 100,
    "workspace_id": 100,
    "api_key_id": 100,
    "service_tier": 32,
    "context_window": 32,
    "inference_geo": 32,
}
USAGE_DIMENSIONS = tuple(USAGE_DIMENSION_LENGTHS)
USAGE_COUNTERS = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
    "output_tokens",
    "web_search_requests",
)
COST_DIMENSIONS = (
    "workspace_id",
    "description",
    "model",
    "cost_type",
    "token_type",
    "service_tier",
    "context_window",
    "inference_geo",
    "currency",
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
            dims = {name: _dim(result.get(name), USAGE_DIMENSION_LENGTHS[name]) for name in USAGE_DIMENSIONS}
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
            dims = {
                "workspace_id": _dim(result.get("workspace_id")),
                "description": _dim(result.get("description"), 300),
                "model": _dim(result.get("model")),
                "cost_type": _dim(result.get("cost_type"), 32),
                "token_type": _dim(result.get("token_type"), 64),
                "service_tier": _dim(result.get("service_tier"), 32),
                "context_window": _dim(result.get("context_window"), 32),
                "inference_geo": _dim(result.get("inference_geo"), 32),
                "currency": _dim(result.get("currency") or "USD", 3),
            }
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


# One step


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: str  # unconfigured | idle | paced | fetched | failed
    report: str = ""
    width: str = ""
    rows: int = 0
    has_more: bool = False
    status: int | None = None
    detail: str = ""


def _snap(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_window(stream: Stream, state: AdminSyncState, now: datetime) -> tuple[datetime, datetime]:
    backfill = timedelta(days=settings.FLAGSTAFF_ADMIN_SYNC_BACKFILL_DAYS)
    if stream.max_backfill is not None:
        backfill = min(backfill, stream.max_backfill)
    earliest = now - backfill
    start = (
        earliest if state.synced_through is None else max(earliest, state.synced_through - stream.lookback)
    )
    # The end of the bucket now under way: the open bucket is fetched too, and again next pass.
    return _snap(start, stream.step), _snap(now, stream.step) + stream.step


def _pick(states: list[AdminSyncState], now: datetime) -> AdminSyncState | None:
    due = [s for s in states if s.next_run_at is None or s.next_run_at <= now]
    if not due:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    # A pass under way first (finish what was started), then the longest-waiting stream.
    return min(due, key=lambda s: (not s.in_progress, s.next_run_at or epoch, s.pk))


def _take_pacing_slot(now: datetime, total: int) -> bool:
    """Claim the right to one request: every stream's clock moves only if none is in the future."""
    if AdminSyncState.objects.filter(next_allowed_at__gt=now).exists():
        return False
    interval = timedelta(seconds=settings.FLAGSTAFF_ADMIN_SYNC_MIN_INTERVAL_SECONDS)
    moved = AdminSyncState.objects.filter(
        Q(next_allowed_at__isnull=True) | Q(next_allowed_at__lte=now)
    ).update(next_allowed_at=now + interval)
    return moved == total


def _failure_backoff(failures: int) -> timedelta:
    interval = timedelta(seconds=settings.FLAGSTAFF_ADMIN_SYNC_MIN_INTERVAL_SECONDS)
    return min(MAX_FAILURE_BACKOFF, interval * 2 ** min(failures, 10))


def sync_step(
    *, now: datetime | None = None, streams: Collection[tuple[str, str]] | None = None
) -> StepResult:
    """Make at most one Admin API request for the stream that is due, and record the outcome.

    `streams` limits the choice to some (report, bucket width) pairs; by default all are candidates.

    Idempotent: pages are upserted by their dimensions, and the state row is advanced only from
    the cursor this step read, so a duplicated or concurrent step re-stores the same rows.
    """
    if not is_configured():
        return StepResult("unconfigured", detail="ANTHROPIC_ADMIN_API_KEY is not set")
    now = now or timezone.now()
    states = ensure_states()
    if streams is not None:
        states = [s for s in states if (s.report, s.bucket_width) in streams]
    state = _pick(states, now)
    if state is None:
        return StepResult("idle")
    if not _take_pacing_slot(now, AdminSyncState.objects.count()):
        return StepResult("paced", state.report, state.bucket_width)
    state.refresh_from_db()
    stream = STREAM_BY_KEY[(state.report, state.bucket_width)]
    cursor = state.cursor
    if cursor and state.window_start and state.window_end:
        window_start, window_end = state.window_start, state.window_end
    else:
        window_start, window_end = _new_window(stream, state, now)
    params: dict[str, Any] = {
        "starting_at": _rfc3339(window_start),
        "ending_at": _rfc3339(window_end),
        "bucket_width": stream.width,
        "limit": stream.limit,
        "group_by[]": list(stream.group_by),
    }
    if cursor:
        params["page"] = cursor
    mine = AdminSyncState.objects.filter(pk=state.pk, cursor=cursor)
    try:
        page = fetch_page(stream, params)
        if stream.report == AdminReport.USAGE:
            rows = store_usage_page(width=stream.width, data=page["data"], synced_at=now)
        else:
            rows = store_cost_page(data=page["data"], synced_at=now)
    except AdminApiError as error:
        return _record_failure(state, mine, stream, error, now, resumed=bool(cursor))
    next_page = page.get("next_page") if page.get("has_more") else None
    common: dict[str, Any] = {
        "health": SyncHealth.OK,
        "last_attempt_at": now,
        "last_status": 200,
        "last_error": "",
        "consecutive_failures": 0,
        "pages_fetched": (F("pages_fetched") + 1) if cursor else 1,
        "rows_stored": (F("rows_stored") + rows) if cursor else rows,
    }
    if next_page:
        mine.update(
            cursor=str(next_page)[:500],
            window_start=window_start,
            window_end=window_end,
            next_run_at=now,
            **common,
        )
    else:
        mine.update(
            cursor="",
            window_start=window_start,
            window_end=window_end,
            synced_through=now,
            last_success_at=now,
            next_run_at=now + stream.refresh,
            **common,
        )
    logger.info(
        "admin sync %s %s: %s rows, more=%s",
        stream.report,
        stream.width,
        rows,
        bool(next_page),
        extra={"report": stream.report, "bucket_width": stream.width, "rows": rows},
    )
    return StepResult("fetched", stream.report, stream.width, rows=rows, has_more=bool(next_page), status=200)


def _record_failure(
    state: AdminSyncState,
    mine: Any,
    stream: Stream,
    error: AdminApiError,
    now: datetime,
    *,
    resumed: bool,
) -> StepResult:
    failures = state.consecutive_failures + 1
    fields: dict[str, Any] = {
        "last_attempt_at": now,
        "last_status": error.status,
        "consecutive_failures": failures,
        "next_run_at": now + _failure_backoff(failures),
    }
    if error.status in (401, 403):
        fields["health"] = SyncHealth.UNAUTHORISED
        fields["last_error"] = (
            f"Unauthorised: the Admin API refused the key ({error.message}). Set ANTHROPIC_ADMIN_API_KEY "
            "or ANTHROPIC_ADMIN_API_KEY_FILE to an organisation Admin API key (sk-ant-admin01-…)."
        )
    elif error.status == 429:
        wait = error.retry_after or DEFAULT_RETRY_AFTER
        fields["health"] = SyncHealth.RATE_LIMITED
        fields["last_error"] = f"Rate limited ({error.message}); retrying after {wait.total_seconds():g} s."
        fields["next_run_at"] = now + wait
        # The limit is the organisation's: every stream waits.
        AdminSyncState.objects.filter(
            Q(next_allowed_at__isnull=True) | Q(next_allowed_at__lt=now + wait)
        ).update(next_allowed_at=now + wait)
    else:
        fields["health"] = SyncHealth.FAILED
        fields["last_error"] = error.message
        if error.status == 400 and resumed:
            # Most likely the page token is no longer accepted: start the pass again.
            fields["cursor"] = ""
            fields["last_error"] = f"{error.message} (the pass restarts from its first page)"
    fields["last_error"] = str(fields["last_error"])[:MAX_ERROR_CHARS]
    mine.update(**fields)
    logger.warning(
        "admin sync %s %s failed: %s",
        stream.report,
        stream.width,
        error.status,
        extra={"report": stream.report, "bucket_width": stream.width, "status": error.status},
    )
    return StepResult(
        "failed", stream.report, stream.width, status=error.status, detail=str(fields["last_error"])
    )


def sync_until_idle(
    *, max_steps: int = 50, streams: Collection[tuple[str, str]] | None = None
) -> list[StepResult]:
    """Run steps until nothing is due, a request fails or the pacing stops us."""
    results = []
    for _ in range(max_steps):
        result = sync_step(streams=streams)
        results.append(result)
        if result.outcome not in ("fetched",):
            break
    return results
