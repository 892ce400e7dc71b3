"""Live scoring: which scorers judge a flag's sampled traffic, the scores, and their rollups.

A sample is scored at most once however many workers run: a worker first claims it (an
insert of its LiveScoreClaim, or a conditional UPDATE of a stale claim) and holds no lock
while it calls a judge. The rollups are the quality input of the rollout analysis.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from evals.models.base import SCORE_OR_ERROR


class LiveScoringPolicy(models.Model):
    flag = models.OneToOneField("flags.Flag", on_delete=models.CASCADE, related_name="live_scoring_policy")
    scorers = models.JSONField(
        default=list, blank=True, help_text="Reference-free scorer specs; empty: those of the gate's eval set"
    )
    sample_rates = models.JSONField(
        default=dict,
        blank=True,
        help_text='Share of samples scored per arm: {"control": 1.0, "candidate": 1.0}',
    )
    daily_judge_budget_micro_usd = models.BigIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(daily_judge_budget_micro_usd__gte=0), name="live_policy_budget_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"live scoring of {self.flag_id}"


class ClaimState(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    DONE = "done", "Scored"
    SKIPPED = "skipped", "Skipped (not sampled, no policy or over budget)"


class LiveScoreClaim(models.Model):
    """The claim that makes a sample scored once; a stale claim (a killed worker) may be retaken."""

    # Samples are deleted at the end of their retention; their claims and scores go with them,
    # while the rollups keep the counts.
    sample = models.OneToOneField("telemetry.Sample", on_delete=models.CASCADE, related_name="live_claim")
    state = models.CharField(max_length=16, choices=ClaimState.choices, default=ClaimState.CLAIMED)
    claimed_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "claimed_at"], name="live_claim_state_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(state=ClaimState.CLAIMED) | Q(finished_at__isnull=False),
                name="live_claim_finished_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"claim of sample {self.sample_id}: {self.state}"


class LiveScore(models.Model):
    sample = models.ForeignKey("telemetry.Sample", on_delete=models.CASCADE, related_name="live_scores")
    scorer = models.CharField(max_length=64, help_text="The scorer spec's key (its name unless set)")
    scorer_version = models.PositiveIntegerField()
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    error = models.TextField(blank=True)
    explanation = models.TextField(blank=True)
    judge_version = models.ForeignKey(
        "flags.ConfigVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    cost_micro_usd = models.BigIntegerField(default=0)
    scored_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sample", "scorer"], name="live_score_unique_scorer"),
            models.CheckConstraint(condition=SCORE_OR_ERROR, name="live_score_result_or_error"),
            models.CheckConstraint(condition=Q(cost_micro_usd__gte=0), name="live_score_cost_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.scorer} on sample {self.sample_id}"


class LiveScoreRollup(models.Model):
    """Counters of one (minute, environment, flag, version, arm, scorer), incremented in SQL.

    As in telemetry's Rollup, the unique index coalesces the nullable keys so that NULLs
    collide as one key and `ON CONFLICT` finds the row.
    """

    bucket = models.DateTimeField(help_text="Start of the minute (UTC)")
    environment = models.ForeignKey(
        "flags.Environment", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    flag = models.ForeignKey("flags.Flag", on_delete=models.CASCADE, related_name="+", db_index=False)
    version = models.PositiveIntegerField(null=True, blank=True)
    arm = models.CharField(max_length=32, blank=True)
    scorer = models.CharField(max_length=64)
    n = models.BigIntegerField(default=0, help_text="Samples scored, errors included")
    passed = models.BigIntegerField(default=0)
    score_sum = models.FloatField(default=0.0)
    errors = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["bucket"]
        constraints = [
            models.UniqueConstraint(
                F("bucket"),
                Coalesce(F("environment"), Value(0)),
                F("flag"),
                Coalesce(F("version"), Value(0)),
                F("arm"),
                F("scorer"),
                name="live_rollup_unique_key",
            ),
            models.CheckConstraint(
                condition=Q(n__gte=0) & Q(passed__gte=0) & Q(errors__gte=0) & Q(score_sum__gte=0),
                name="live_rollup_counts_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(n__gte=F("passed") + F("errors")), name="live_rollup_passed_errors_lte_n"
            ),
        ]
        indexes = [models.Index(fields=["flag", "bucket"], name="live_rollup_flag_bucket_idx")]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:%M} {self.flag_id} v{self.version} {self.arm} {self.scorer}"


class JudgeSpend(models.Model):
    """What live scoring spent on judges for one flag on one UTC day (the budget's counter)."""

    day = models.DateField()
    flag = models.ForeignKey("flags.Flag", on_delete=models.CASCADE, related_name="+")
    micro_usd = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "flag"], name="judge_spend_unique_day_flag"),
            models.CheckConstraint(condition=Q(micro_usd__gte=0), name="judge_spend_non_negative"),
        ]

    def __str__(self) -> str:
        return f"judge spend {self.flag_id} {self.day}: {self.micro_usd}"
