"""One step of the sync (at most one request) and the loop of steps: which stream is due, the
pacing slot, the window of a pass, failures and their back-off."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from telemetry.models.usage_sync import AdminReport, AdminSyncState, SyncHealth
from telemetry.services.usage_sync.admin_api import (
    DEFAULT_RETRY_AFTER,
    STREAM_BY_KEY,
    STREAMS,
    AdminApiError,
    Stream,
    fetch_page,
    is_configured,
)
from telemetry.services.usage_sync.pages import store_cost_page, store_usage_page

logger = logging.getLogger(__name__)

MAX_FAILURE_BACKOFF = timedelta(hours=1)
MAX_ERROR_CHARS = 1000


def ensure_states() -> list[AdminSyncState]:
    """One state row per stream (created on first use; concurrent creators collide harmlessly)."""
    AdminSyncState.objects.bulk_create(
        [AdminSyncState(report=s.report, bucket_width=s.width) for s in STREAMS], ignore_conflicts=True
    )
    known = {(s.report, s.width) for s in STREAMS}
    return [state for state in AdminSyncState.objects.all() if (state.report, state.bucket_width) in known]


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
