"""A/B experiments: a baseline and up to three candidates with weights for a fixed window, their
arms, and the decision of every tick (rollouts/services/experiments.py)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from flagstaff.engine import BUCKETS
from rollouts.models.rollouts import PauseReason, Rollout


class ExperimentState(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    CONCLUDED = "concluded", "Concluded"
    ABORTED = "aborted", "Aborted"
    SUPERSEDED = "superseded", "Superseded"


EXPERIMENT_ACTIVE_STATES = (ExperimentState.DRAFT, ExperimentState.RUNNING, ExperimentState.PAUSED)
EXPERIMENT_TERMINAL_STATES = (
    ExperimentState.CONCLUDED,
    ExperimentState.ABORTED,
    ExperimentState.SUPERSEDED,
)


class ExperimentQuerySet(models.QuerySet["Experiment"]):
    def active(self) -> ExperimentQuerySet:
        return self.filter(state__in=EXPERIMENT_ACTIVE_STATES)

    def due_for_tick(self, now: object) -> ExperimentQuerySet:
        return self.filter(state=ExperimentState.RUNNING, next_tick_at__lte=now)


class Experiment(models.Model):
    """An A/B test of up to three candidate versions against the serving one (the baseline) on
    a flag × environment, for a fixed window or until every arm has a required sample size.

    Its arms are served through an experiment split of the flag (flags.Split, its own seed);
    each tick checks the split's health and, at the end, `conclude_experiment` names the arms
    that pass every guardrail and the cheapest of them. Every change of `state` goes through
    rollouts/services/experiments.py, which compares and sets `version`.
    """

    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="experiments")
    environment = models.ForeignKey("flags.Environment", on_delete=models.PROTECT, related_name="experiments")
    baseline = models.ForeignKey(
        "flags.ConfigVersion", on_delete=models.PROTECT, related_name="+", help_text="The serving version"
    )
    split = models.ForeignKey(
        "flags.Split", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(max_length=16, choices=ExperimentState.choices, default=ExperimentState.DRAFT)
    pause_reason = models.CharField(max_length=32, choices=PauseReason.choices, blank=True)
    # Optimistic lock: every transition is `UPDATE ... WHERE version = <read>`, bumping it.
    version = models.PositiveIntegerField(default=0)
    window_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="A fixed window")
    required_units_per_arm = models.PositiveIntegerField(
        null=True, blank=True, help_text="Or: end when every arm has this many units"
    )
    guardrails = models.JSONField(help_text="The guardrail policy (rollouts.plans.GuardrailSpec fields)")
    goals = models.JSONField(default=list, blank=True, help_text="Goal metrics, two-sided, BH-corrected")
    latency_budgets_ms = models.JSONField(
        default=dict, blank=True, help_text="The surface's p95 budgets an arm must stay within"
    )
    alpha = models.FloatField(default=0.05)
    tick_interval_seconds = models.PositiveIntegerField()
    next_tick_at = models.DateTimeField(null=True, blank=True)
    ticks_done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    winner = models.CharField(max_length=32, blank=True, help_text="The cheapest arm that passes")
    canary = models.ForeignKey(
        Rollout,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The winner's canary",
    )
    created_by_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(state__in=EXPERIMENT_ACTIVE_STATES),
                name="experiment_one_active_per_flag_environment",
            ),
            models.CheckConstraint(
                condition=Q(window_seconds__isnull=False) | Q(required_units_per_arm__isnull=False),
                name="experiment_has_an_end",
            ),
            models.CheckConstraint(
                condition=Q(state=ExperimentState.PAUSED) | Q(pause_reason=""),
                name="experiment_pause_reason_only_when_paused",
            ),
            models.CheckConstraint(
                condition=Q(state__in=EXPERIMENT_TERMINAL_STATES) | Q(ended_at__isnull=True),
                name="experiment_ended_only_when_terminal",
            ),
            models.CheckConstraint(
                condition=Q(tick_interval_seconds__gte=1), name="experiment_tick_interval_positive"
            ),
            models.CheckConstraint(
                condition=Q(alpha__gt=0, alpha__lt=1), name="experiment_alpha_in_unit_interval"
            ),
        ]
        indexes = [
            models.Index(fields=["next_tick_at"], condition=Q(state="running"), name="experiment_due_idx"),
            models.Index(fields=["flag", "environment", "-created_at"], name="experiment_flag_env_idx"),
        ]

    def __str__(self) -> str:
        return f"experiment {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in EXPERIMENT_ACTIVE_STATES


class ExperimentArm(models.Model):
    """One arm: the baseline (index 0, named `baseline`) or a candidate, with its weight."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=32)
    version = models.ForeignKey("flags.ConfigVersion", on_delete=models.PROTECT, related_name="+")
    weight = models.PositiveIntegerField(help_text="Basis points of units (100 = 1 %)")

    class Meta:
        ordering = ["experiment", "index"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "index"], name="experiment_arm_unique_index"),
            models.UniqueConstraint(fields=["experiment", "name"], name="experiment_arm_unique_name"),
            models.UniqueConstraint(fields=["experiment", "version"], name="experiment_arm_unique_version"),
            models.CheckConstraint(
                condition=Q(weight__gte=1, weight__lte=BUCKETS), name="experiment_arm_weight_in_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} of experiment {self.experiment_id}"


class ExperimentDecision(models.Model):
    """What one tick of an experiment decided (hold, pause, conclude), or its conclusion by
    hand, on what numbers: per arm the guardrails' bounds, cost per call and goals. Kept for good."""

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="decisions")
    tick = models.PositiveIntegerField(help_text="The experiment's tick number: one decision per tick")
    action = models.CharField(max_length=16)
    reason = models.CharField(max_length=32)
    explanation = models.TextField()
    inputs = models.JSONField(help_text="Per-arm aggregates, window, code version")
    inputs_hash = models.CharField(max_length=64)
    arms = models.JSONField(help_text="Per arm: passes, failing guardrails, bounds, cost per call, goals")
    cheapest_passing = models.CharField(max_length=32, blank=True)
    evidence = models.TextField(blank=True)
    srm_p_value = models.FloatField(null=True, blank=True)
    alpha = models.FloatField()
    applied = models.BooleanField()
    outcome = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["experiment", "-tick"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "tick"], name="experiment_decision_one_per_tick")
        ]

    def __str__(self) -> str:
        return f"tick {self.tick} of experiment {self.experiment_id}: {self.action} ({self.reason})"
