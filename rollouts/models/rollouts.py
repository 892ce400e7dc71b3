"""Rollouts: a candidate version moved onto a flag's traffic in stages, its guardrails, and the
decision of every analysis tick.

A rollout owns no bucketing: it moves the flag's `Split` (flags/services/splits.py), whose seed
is drawn once when the split is created and kept while its weight changes, so the stages are
nested (a unit in the 1 % stays in at 10 %). Every change of `state` or `stage_index` goes
through rollouts/services/lifecycle.py, which compares and sets `version`.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from flagstaff.engine import BUCKETS
from rollouts.analysis import Action, Direction, Kind, OnInconclusive, Source


class RolloutState(models.TextChoices):
    DRAFT = "draft", "Draft (waiting for the candidate's gate)"
    READY = "ready", "Ready"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    PROMOTED = "promoted", "Promoted"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTED = "aborted", "Aborted"
    SUPERSEDED = "superseded", "Superseded"


# The states in which a rollout holds its flag × environment: at most one such rollout each.
ACTIVE_STATES = (RolloutState.DRAFT, RolloutState.READY, RolloutState.RUNNING, RolloutState.PAUSED)
# The states in which the candidate is on traffic (at its stage's share): what a rollback takes off.
ON_TRAFFIC_STATES = (RolloutState.RUNNING, RolloutState.PAUSED)
TERMINAL_STATES = (
    RolloutState.PROMOTED,
    RolloutState.ROLLED_BACK,
    RolloutState.ABORTED,
    RolloutState.SUPERSEDED,
)


class PauseReason(models.TextChoices):
    """Why a rollout is paused, as Argo Rollouts' PauseReason names them."""

    MANUAL = "manual", "Paused by hand"
    AWAITING_APPROVAL = "awaiting_approval", "The stage passed and waits for an Approver"
    INCONCLUSIVE = "inconclusive", "The stage ended inconclusive"
    HEALTH_CHECK_FAILED = "health_check_failed", "Sample-ratio mismatch"
    SCORER_ERRORS = "scorer_errors", "Too many scorer errors"


class StageGate(models.TextChoices):
    AUTO = "auto", "Promote automatically"
    APPROVAL = "approval", "Wait for an Approver"


class StageState(models.TextChoices):
    PENDING = "pending", "Pending"
    ANALYZING = "analyzing", "Analyzing"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    INCONCLUSIVE = "inconclusive", "Inconclusive"
    ERRORED = "errored", "Errored"


class RolloutQuerySet(models.QuerySet["Rollout"]):
    def active(self) -> RolloutQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def due_for_tick(self, now: object) -> RolloutQuerySet:
        return self.filter(state=RolloutState.RUNNING, next_tick_at__lte=now)


class Rollout(models.Model):
    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="rollouts")
    environment = models.ForeignKey("flags.Environment", on_delete=models.PROTECT, related_name="rollouts")
    baseline = models.ForeignKey(
        "flags.ConfigVersion", on_delete=models.PROTECT, related_name="+", help_text="The serving version"
    )
    candidate = models.ForeignKey("flags.ConfigVersion", on_delete=models.PROTECT, related_name="+")
    # The split the rollout moves (its seed is the rollout's seed), set when it starts.
    split = models.ForeignKey(
        "flags.Split", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(max_length=16, choices=RolloutState.choices, default=RolloutState.DRAFT)
    pause_reason = models.CharField(max_length=32, choices=PauseReason.choices, blank=True)
    stage_index = models.PositiveSmallIntegerField(default=0)
    # Optimistic lock: every transition is `UPDATE ... WHERE version = <read>`, bumping it.
    version = models.PositiveIntegerField(default=0)
    tick_interval_seconds = models.PositiveIntegerField()
    # The tick's due work: a rollout is due when running and next_tick_at has passed; a claim
    # pushes it a lease ahead, and the tick's decision sets it one interval ahead.
    next_tick_at = models.DateTimeField(null=True, blank=True)
    ticks_done = models.PositiveIntegerField(default=0)
    tick_state = models.JSONField(default=dict, blank=True, help_text="What the last tick hands the next")
    alpha = models.FloatField(default=0.05)
    alpha_critical = models.FloatField(default=0.005)
    created_by_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = RolloutQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(state__in=ACTIVE_STATES),
                name="rollout_one_active_per_flag_environment",
            ),
            models.CheckConstraint(
                condition=~Q(candidate=F("baseline")), name="rollout_candidate_not_baseline"
            ),
            models.CheckConstraint(
                condition=Q(state=RolloutState.PAUSED) | Q(pause_reason=""),
                name="rollout_pause_reason_only_when_paused",
            ),
            models.CheckConstraint(
                condition=Q(state__in=TERMINAL_STATES) | Q(ended_at__isnull=True),
                name="rollout_ended_only_when_terminal",
            ),
            models.CheckConstraint(
                condition=Q(tick_interval_seconds__gte=1), name="rollout_tick_interval_positive"
            ),
            models.CheckConstraint(
                condition=Q(alpha__gt=0, alpha__lt=1, alpha_critical__gt=0, alpha_critical__lt=1),
                name="rollout_alphas_in_unit_interval",
            ),
        ]
        indexes = [
            models.Index(fields=["next_tick_at"], condition=Q(state="running"), name="rollout_due_idx"),
            models.Index(fields=["flag", "environment", "-created_at"], name="rollout_flag_env_idx"),
        ]

    def __str__(self) -> str:
        return f"rollout {self.pk}: v{self.baseline_id} -> v{self.candidate_id}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_on_traffic(self) -> bool:
        return self.state in ON_TRAFFIC_STATES


class Stage(models.Model):
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="stages")
    index = models.PositiveSmallIntegerField()
    weight = models.PositiveIntegerField(help_text="Basis points of units served the candidate (100 = 1 %)")
    min_duration_seconds = models.PositiveIntegerField()
    max_duration_seconds = models.PositiveIntegerField()
    min_units_per_arm = models.PositiveIntegerField()
    min_judged_per_arm = models.PositiveIntegerField()
    gate = models.CharField(max_length=16, choices=StageGate.choices, default=StageGate.AUTO)
    on_inconclusive = models.CharField(
        max_length=16,
        choices=[(choice.value, choice.value) for choice in OnInconclusive],
        default=OnInconclusive.PAUSE.value,
    )
    state = models.CharField(max_length=16, choices=StageState.choices, default=StageState.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rollout", "index"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "index"], name="stage_unique_index"),
            models.CheckConstraint(
                condition=Q(weight__gte=1, weight__lte=BUCKETS), name="stage_weight_in_range"
            ),
            models.CheckConstraint(
                condition=Q(min_duration_seconds__lte=F("max_duration_seconds")),
                name="stage_min_duration_lte_max",
            ),
        ]

    def __str__(self) -> str:
        return f"stage {self.index} of rollout {self.rollout_id}: {self.weight} bp"


class Guardrail(models.Model):
    """One metric of a rollout's policy (rollouts.analysis.Guardrail, kept with the rollout)."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="guardrails")
    name = models.CharField(max_length=64)
    label = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=[(k.value, k.value) for k in Kind])
    direction = models.CharField(max_length=16, choices=[(d.value, d.value) for d in Direction])
    margin = models.FloatField()
    relative_margin = models.BooleanField(default=False)
    critical = models.BooleanField(default=False)
    source = models.CharField(max_length=16, choices=[(s.value, s.value) for s in Source])
    may_act = models.BooleanField(default=True, help_text="False: advisory, shown and never acting")
    metric = models.CharField(
        max_length=64, help_text="What the aggregates read (rollouts/arm_aggregates.py)"
    )
    scorer = models.CharField(
        max_length=64, blank=True, help_text="The live scorer's key (live_score source)"
    )
    quantile = models.FloatField(default=0.95)
    cache_sensitive = models.BooleanField(default=False)
    unit = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["rollout", "id"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "name"], name="guardrail_unique_name"),
            models.CheckConstraint(condition=Q(margin__gte=0), name="guardrail_margin_non_negative"),
            models.CheckConstraint(
                condition=Q(quantile__gt=0, quantile__lt=1), name="guardrail_quantile_open"
            ),
            models.CheckConstraint(
                condition=~Q(source=Source.LIVE_SCORE.value) | ~Q(scorer=""),
                name="guardrail_live_score_names_scorer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} of rollout {self.rollout_id}"


class Decision(models.Model):
    """What one analysis tick decided, on what numbers, and what became of it. Kept for good."""

    rollout = models.ForeignKey(Rollout, on_delete=models.PROTECT, related_name="decisions")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="decisions")
    tick = models.PositiveIntegerField(help_text="The rollout's tick number: one decision per tick")
    action = models.CharField(max_length=16, choices=[(a.value, a.value) for a in Action])
    reason = models.CharField(max_length=32, help_text="Stable reason code (rollouts.analysis.Reason)")
    explanation = models.TextField()
    inputs = models.JSONField(help_text="Per-arm aggregates, window, stage, code and scorer versions")
    inputs_hash = models.CharField(max_length=64)
    metrics = models.JSONField(help_text="Per metric: status, estimates, bounds, p-value, margin")
    srm_p_value = models.FloatField(null=True, blank=True)
    alpha = models.FloatField()
    alpha_critical = models.FloatField()
    # What the state machine made of the action: applied, or refused because the rollout moved
    # (a manual rollback during the tick wins).
    applied = models.BooleanField()
    outcome = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rollout", "-tick"]
        constraints = [models.UniqueConstraint(fields=["rollout", "tick"], name="decision_one_per_tick")]

    def __str__(self) -> str:
        return f"tick {self.tick} of rollout {self.rollout_id}: {self.action} ({self.reason})"
