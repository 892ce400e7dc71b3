"""Per-call records, their optional samples, and the per-minute rollups the dashboards read.

Rollups are counters that concurrent ingests increment in SQL (`INSERT ... ON CONFLICT DO
UPDATE SET n = n + excluded.n`, see telemetry/services/upserts.py); error types, unknown stop
reasons and latency histograms are child rows keyed by the rollup so that they can be
incremented the same way instead of read-modify-written as JSON.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from telemetry.records import KNOWN_STOP_REASONS

__all__ = ["KNOWN_STOP_REASONS", "CallRecord", "Rollup", "RollupCount", "RollupHistogram", "Sample"]


class CallRecordQuerySet(models.QuerySet["CallRecord"]):
    def for_flag(self, flag_id: int) -> CallRecordQuerySet:
        return self.filter(flag_id=flag_id)


class CallRecord(models.Model):
    """One Claude call as the service logged it; `request_id` makes ingest idempotent within an
    environment (a staging sender's id never pre-empts production's)."""

    request_id = models.CharField(max_length=200)
    timestamp = models.DateTimeField(help_text="When the call was made (the sender's clock)")
    received_at = models.DateTimeField()
    model = models.CharField(max_length=100)
    stop_reason = models.CharField(max_length=64, blank=True)
    stop_reason_known = models.BooleanField(default=True)
    input_tokens = models.BigIntegerField(default=0, help_text="Uncached input tokens")
    output_tokens = models.BigIntegerField(default=0)
    cache_write_5m_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    web_search_requests = models.IntegerField(default=0)
    web_fetch_requests = models.IntegerField(default=0)
    server_tool_use = models.JSONField(
        null=True, blank=True, help_text="Other server tool counters, as sent (new tools appear over time)"
    )
    iterations = models.JSONField(null=True, blank=True)
    service_tier = models.CharField(max_length=32, blank=True)
    inference_geo = models.CharField(max_length=32, blank=True)
    latency_ms = models.IntegerField(null=True, blank=True)
    ttft_ms = models.IntegerField(null=True, blank=True)
    flag_state = models.CharField(max_length=300, blank=True, help_text="The token as sent")
    # Ingest writes only ids it has just looked up, and flags are archived, not deleted; Django
    # still applies SET_NULL on delete. Without database constraints or indexes a row costs
    # about a third less to insert: PostgreSQL runs a deferred foreign-key check per row and
    # per constraint.
    environment = models.ForeignKey(
        "flags.Environment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    flag = models.ForeignKey(
        "flags.Flag",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    version = models.PositiveIntegerField(null=True, blank=True)
    arm = models.CharField(max_length=32, blank=True)
    split_id = models.CharField(max_length=64, blank=True)
    revision = models.BigIntegerField(null=True, blank=True)
    attributed = models.BooleanField(default=False)
    user_hash = models.CharField(max_length=64, blank=True, help_text="HMAC-SHA256 of the user id")
    user_id = models.CharField(
        max_length=200, blank=True, help_text="Only with FLAGSTAFF_TELEMETRY_STORE_RAW_USER_ID"
    )
    session_id = models.CharField(max_length=200, blank=True)
    surface = models.CharField(max_length=32, blank=True)
    error_type = models.CharField(max_length=64, blank=True)
    error_status = models.IntegerField(null=True, blank=True)
    cost_micro_usd = models.BigIntegerField(
        null=True, blank=True, help_text="Null when the model or one of its prices is unknown"
    )

    objects = CallRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp"]
        # One secondary index only: each one costs every insert about a fifth of its time.
        # Retention and drill-downs into a time window use it; per-flag figures come from the
        # rollups, never from scanning calls.
        indexes = [models.Index(fields=["timestamp"], name="callrecord_timestamp_idx")]
        constraints = [
            # Unattributed calls (no environment) are one more environment: NULLs would not collide.
            # The call store's ON CONFLICT names these expressions (CALL_CONFLICT).
            models.UniqueConstraint(
                F("request_id"),
                Coalesce(F("environment"), Value(0)),
                name="callrecord_unique_environment_request_id",
            ),
            models.CheckConstraint(
                condition=Q(input_tokens__gte=0)
                & Q(output_tokens__gte=0)
                & Q(cache_write_5m_tokens__gte=0)
                & Q(cache_write_1h_tokens__gte=0)
                & Q(cache_read_tokens__gte=0),
                name="callrecord_tokens_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.request_id

    @property
    def prompt_tokens(self) -> int:
        return (
            self.input_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
            + self.cache_read_tokens
        )


class Sample(models.Model):
    """Input and output of a sampled call, kept for scoring until the sample retention ends."""

    call = models.OneToOneField(CallRecord, on_delete=models.CASCADE, related_name="sample")
    input = models.JSONField(null=True)
    output = models.JSONField(null=True)
    size_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="sample_created_at_idx")]

    def __str__(self) -> str:
        return f"sample of {self.call_id}"


class RollupQuerySet(models.QuerySet["Rollup"]):
    def for_flag(self, flag_id: int) -> RollupQuerySet:
        return self.filter(flag_id=flag_id)

    def between(self, start: object, end: object) -> RollupQuerySet:
        return self.filter(bucket__gte=start, bucket__lt=end)


class Rollup(models.Model):
    """Counters of one (minute, environment, flag, version, arm, model).

    Unattributed calls roll up with a null flag (and a null environment when it is unknown
    too). The unique index coalesces the nullable keys, so that NULLs collide as one key and
    `ON CONFLICT` finds the row (NULLs are otherwise distinct in PostgreSQL and SQLite).
    """

    bucket = models.DateTimeField(help_text="Start of the minute (UTC)")
    environment = models.ForeignKey(
        "flags.Environment",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    flag = models.ForeignKey(
        "flags.Flag", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    version = models.PositiveIntegerField(null=True, blank=True)
    arm = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=100)
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    stop_end_turn = models.BigIntegerField(default=0)
    stop_max_tokens = models.BigIntegerField(default=0)
    stop_stop_sequence = models.BigIntegerField(default=0)
    stop_tool_use = models.BigIntegerField(default=0)
    stop_pause_turn = models.BigIntegerField(default=0)
    stop_refusal = models.BigIntegerField(default=0)
    stop_model_context_window_exceeded = models.BigIntegerField(default=0)
    stop_other = models.BigIntegerField(default=0, help_text="Unknown stop reasons (see RollupCount)")
    stop_none = models.BigIntegerField(default=0, help_text="Calls without a stop reason (errors)")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_write_5m_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cost_micro_usd = models.BigIntegerField(default=0, help_text="Sum over the calls with a known cost")
    cost_unknown_calls = models.BigIntegerField(default=0)
    # The sum of the squared per-call costs, in micro-USD squared, exact: the variance of the
    # cost per call (a rollout's continuous guardrail) needs it. One call may cost up to
    # ~1.5e11 micro-USD (records.MAX_TOKENS per token field), so a square can pass 1e22 and a
    # 64-bit column could overflow on one valid record; numeric(38) holds ~1e16 such calls.
    # Null means unknown: rows written before the column existed whose raw calls were gone
    # (the migration backfills the others); adding to an unknown sum keeps it unknown.
    cost_sq_micro_usd2 = models.DecimalField(
        max_digits=38,
        decimal_places=0,
        null=True,
        default=0,
        help_text="Sum of squared per-call costs (micro-USD²) of the calls with a known cost; null: unknown",
    )

    objects = RollupQuerySet.as_manager()

    class Meta:
        ordering = ["bucket"]
        constraints = [
            models.UniqueConstraint(
                F("bucket"),
                Coalesce(F("environment"), Value(0)),
                Coalesce(F("flag"), Value(0)),
                Coalesce(F("version"), Value(0)),
                F("arm"),
                F("model"),
                name="rollup_unique_key",
            ),
        ]
        indexes = [
            models.Index(fields=["flag", "bucket"], name="rollup_flag_bucket_idx"),
            models.Index(fields=["bucket"], name="rollup_bucket_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:%M} {self.flag_id} v{self.version} {self.arm} {self.model}"


class RollupCount(models.Model):
    """A counter of a rollup keyed by a value that is not a fixed column (error type, new stop reason)."""

    class Kind(models.TextChoices):
        ERROR_TYPE = "error_type", "Error type"
        STOP_REASON = "stop_reason", "Unknown stop reason"

    rollup = models.ForeignKey(Rollup, on_delete=models.CASCADE, related_name="counts", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    key = models.CharField(max_length=64)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rollup", "kind", "key"], name="rollup_count_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.rollup_id} {self.kind}={self.key}: {self.n}"


class RollupHistogram(models.Model):
    """Count of a rollup's calls in one log-spaced bucket of a metric (see telemetry/histograms.py)."""

    class Metric(models.TextChoices):
        LATENCY = "latency", "Total latency"
        TTFT = "ttft", "Time to first token"

    rollup = models.ForeignKey(Rollup, on_delete=models.CASCADE, related_name="histogram", db_index=False)
    metric = models.CharField(max_length=8, choices=Metric.choices)
    bucket = models.SmallIntegerField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rollup", "metric", "bucket"], name="rollup_histogram_unique_bucket"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rollup_id} {self.metric}[{self.bucket}] = {self.n}"
