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

from telemetry.services.usage_sync.admin_api import STREAMS, AdminApiError, Stream, fetch_page, is_configured
from telemetry.services.usage_sync.pages import store_cost_page, store_usage_page
from telemetry.services.usage_sync.steps import StepResult, ensure_states, sync_step, sync_until_idle

__all__ = [
    "STREAMS",
    "AdminApiError",
    "StepResult",
    "Stream",
    "ensure_states",
    "fetch_page",
    "is_configured",
    "store_cost_page",
    "store_usage_page",
    "sync_step",
    "sync_until_idle",
]
