"""Organisation usage and cost from Anthropic's Usage & Cost Admin API, and the sync's own state.

Dimension columns hold "" where the API reports null (not grouped by it, the default workspace,
Console usage without an API key), so that the unique constraints the idempotent upserts rely on
hold on every database (NULLs never collide in a unique index).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class BucketWidth(models.TextChoices):
    MINUTE = "1m", "1 minute"
    HOUR = "1h", "1 hour"
    DAY = "1d", "1 day"


# The columns a bucket is grouped by, each the key of the idempotent upsert with its date: the
# unique constraints below and the sync's upserts (telemetry.services.usage_sync.pages) use these.
USAGE_DIMENSIONS = ("model", "workspace_id", "api_key_id", "service_tier", "context_window", "inference_geo")
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


class UsageBucket(models.Model):
    """Token counts of one time bucket and one combination of dimensions, as the API reports them."""

    bucket_width = models.CharField(max_length=2, choices=BucketWidth.choices)
    starting_at = models.DateTimeField()
    ending_at = models.DateTimeField()
    model = models.CharField(max_length=100, blank=True)
    workspace_id = models.CharField(max_length=100, blank=True)
    api_key_id = models.CharField(max_length=100, blank=True)
    service_tier = models.CharField(max_length=32, blank=True)
    context_window = models.CharField(max_length=32, blank=True)
    inference_geo = models.CharField(max_length=32, blank=True)
    uncached_input_tokens = models.BigIntegerField(default=0)
    cache_read_input_tokens = models.BigIntegerField(default=0)
    cache_creation_5m_input_tokens = models.BigIntegerField(default=0)
    cache_creation_1h_input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    web_search_requests = models.BigIntegerField(default=0)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["bucket_width", "starting_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["bucket_width", "starting_at", *USAGE_DIMENSIONS],
                name="usage_bucket_unique_dimensions",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket_width} {self.starting_at:%Y-%m-%d %H:%M} {self.model or '-'}"


class CostBucket(models.Model):
    """One day's cost of one line item, in USD (the API reports cents as a decimal string)."""

    date = models.DateField()
    workspace_id = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=300, blank=True)
    model = models.CharField(max_length=100, blank=True)
    cost_type = models.CharField(max_length=32, blank=True)
    token_type = models.CharField(max_length=64, blank=True)
    service_tier = models.CharField(max_length=32, blank=True)
    context_window = models.CharField(max_length=32, blank=True)
    inference_geo = models.CharField(max_length=32, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    amount_usd = models.DecimalField(max_digits=24, decimal_places=10)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(
                fields=["date", *COST_DIMENSIONS],
                name="cost_bucket_unique_dimensions",
            ),
        ]
        indexes = [models.Index(fields=["date", "model"], name="cost_bucket_date_model_idx")]

    def __str__(self) -> str:
        return f"{self.date} {self.description or self.model or '-'} {self.amount_usd} {self.currency}"


class AdminReport(models.TextChoices):
    USAGE = "usage", "Usage report (messages)"
    COST = "cost", "Cost report"


class SyncHealth(models.TextChoices):
    NEVER = "never", "Not run yet"
    OK = "ok", "OK"
    RATE_LIMITED = "rate_limited", "Rate limited (429)"
    UNAUTHORISED = "unauthorised", "Unauthorised (401/403)"
    FAILED = "failed", "Failed"


class AdminSyncState(models.Model):
    """Where one report stream (report and bucket width) stands.

    A pass fetches the window [window_start, window_end) page by page; `cursor` is the next page
    token while a pass is under way, so a failure resumes from the page that failed. Between
    passes `synced_through` marks how far data was fetched; the next pass starts a little before
    it, because usage and cost land late. `next_allowed_at` is the shared pacing clock: every
    stream carries it and a request is made only when none is in the future (see
    telemetry.services.usage_sync).
    """

    report = models.CharField(max_length=8, choices=AdminReport.choices)
    bucket_width = models.CharField(max_length=2, choices=BucketWidth.choices)
    health = models.CharField(max_length=16, choices=SyncHealth.choices, default=SyncHealth.NEVER)
    cursor = models.CharField(max_length=500, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    synced_through = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True, help_text="When this stream is next due")
    next_allowed_at = models.DateTimeField(null=True, blank=True, help_text="Pacing: no request before")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True, help_text="HTTP status of the last try")
    last_error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    pages_fetched = models.PositiveIntegerField(default=0, help_text="Pages of the current or last pass")
    rows_stored = models.PositiveIntegerField(default=0, help_text="Rows stored by the current or last pass")

    class Meta:
        ordering = ["report", "bucket_width"]
        constraints = [
            models.UniqueConstraint(fields=["report", "bucket_width"], name="admin_sync_state_unique_stream"),
            models.CheckConstraint(
                condition=Q(cursor="") | (Q(window_start__isnull=False) & Q(window_end__isnull=False)),
                name="admin_sync_state_cursor_has_window",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.report} {self.bucket_width} ({self.health})"

    @property
    def in_progress(self) -> bool:
        return bool(self.cursor)
