"""Paired replay (shadow): a rollout's opt-in and budget, each replayed control sample, the daily
spend and the per-minute rollups of paired differences (rollouts/services/paired_replay.py)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from rollouts.models.rollouts import Rollout


class ReplayPolicy(models.Model):
    """A rollout's opt-in to paired replay: the share of control-arm samples re-run through the
    candidate (never served), and the replay's own daily budget (rollouts/services/paired_replay.py)."""

    rollout = models.OneToOneField(Rollout, on_delete=models.CASCADE, related_name="replay_policy")
    enabled = models.BooleanField(default=True)
    sample_rate = models.FloatField(default=1.0, help_text="Share of control-arm samples replayed")
    daily_call_budget = models.PositiveIntegerField(default=500, help_text="Replays per UTC day")
    daily_budget_micro_usd = models.BigIntegerField(
        default=5_000_000, help_text="Replay and judge spend per UTC day, micro-USD"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(sample_rate__gte=0, sample_rate__lte=1), name="replay_policy_rate_share"
            ),
            models.CheckConstraint(
                condition=Q(daily_budget_micro_usd__gte=0), name="replay_policy_budget_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"paired replay of rollout {self.rollout_id}"


class ReplayState(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    DONE = "done", "Paired"
    SKIPPED = "skipped", "Not sampled"
    ERROR = "error", "Errored"


class PairedReplay(models.Model):
    """One control-arm sample replayed through a rollout's candidate: the claim that makes it
    replayed once, then the pair's scores. A stale claim (a killed worker) may be retaken."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="replays")
    sample = models.ForeignKey("telemetry.Sample", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=ReplayState.choices, default=ReplayState.CLAIMED)
    worker = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # Per live scorer key: {"control": passed, "candidate": passed, "error": ""}.
    scores = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    cost_micro_usd = models.BigIntegerField(default=0)
    request_id = models.CharField(max_length=200, blank=True, help_text="The replay call's request id")

    class Meta:
        indexes = [models.Index(fields=["state", "claimed_at"], name="paired_replay_state_idx")]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "sample"], name="paired_replay_once_per_sample"),
        ]

    def __str__(self) -> str:
        return f"replay of sample {self.sample_id} for rollout {self.rollout_id}: {self.state}"


class ReplaySpend(models.Model):
    """What one rollout's paired replay spent on one UTC day (the budget's counters)."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    calls = models.BigIntegerField(default=0)
    micro_usd = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rollout", "day"], name="replay_spend_unique_day"),
        ]

    def __str__(self) -> str:
        return f"replay spend of rollout {self.rollout_id} on {self.day}"


class PairedReplayRollup(models.Model):
    """Per minute (of the control call) × environment × flag × baseline × candidate × scorer:
    the pairs' n, Σd and Σd² of d = candidate − control passed, and errored pairs. The analysis
    tick reads them like the other rollups (rollouts/arm_aggregates.py)."""

    bucket = models.DateTimeField(help_text="Start of the minute (UTC) of the control call")
    environment = models.ForeignKey("flags.Environment", on_delete=models.CASCADE, related_name="+")
    flag = models.ForeignKey("flags.Flag", on_delete=models.CASCADE, related_name="+", db_index=False)
    baseline_version = models.PositiveIntegerField()
    candidate_version = models.PositiveIntegerField()
    scorer = models.CharField(max_length=64)
    n = models.BigIntegerField(default=0, help_text="Pairs scored (errors excluded)")
    d_sum = models.BigIntegerField(default=0)
    d_sq_sum = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["bucket"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment", "candidate_version", "baseline_version", "scorer", "bucket"],
                name="paired_rollup_unique_key",
            ),
        ]

    def __str__(self) -> str:
        return f"paired rollup {self.flag_id}/{self.environment_id} {self.bucket}"
