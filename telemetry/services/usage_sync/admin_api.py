"""The Usage & Cost Admin API as we call it: the four report streams, one page per request, and
its errors (a 429's retry-after; no redirects followed)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.utils import timezone

from telemetry.models.usage_sync import AdminReport, BucketWidth

DEFAULT_BASE_URL = "https://api.anthropic.com"
# The reference's examples of these endpoints all use the old version; their field names under
# 2026-10-21 are unconfirmed, so the old one is pinned and the parsing ignores unknown keys.
ADMIN_API_VERSION = "2023-06-01"
USAGE_PATH = "/v1/organizations/usage_report/messages"
COST_PATH = "/v1/organizations/cost_report"
USAGE_GROUP_BY = ("model", "workspace_id", "api_key_id", "service_tier", "context_window", "inference_geo")
COST_GROUP_BY = ("workspace_id", "description")
DEFAULT_RETRY_AFTER = timedelta(seconds=60)


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
