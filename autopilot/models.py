"""Migrations off deprecated or retiring models, and the per-environment autopilot settings.

A migration is one flag in one environment: the serving version it starts from, the drafted
version (a normal config version of the flag), the eval runs of its gate, the verdict, and the
Draft rollout it proposes. Every state change goes through autopilot/services.py.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class MigrationState(models.TextChoices):
    GATE_RUNNING = "gate_running", "Eval gate running"
    GATE_FAILED = "gate_failed", "Gate failed: the draft waits for a person"
    GATE_ERROR = "gate_error", "Gate could not run: the draft waits for a person"
    ROLLOUT_DRAFTED = "rollout_drafted", "Rollout proposed: waits for a person to start it"
    ROLLOUT_STARTED = "rollout_started", "Rollout started by the environment's auto-start setting"


# A flag × environment has at most one migration in these states: the one a person acts on.
OPEN_STATES = (MigrationState.GATE_RUNNING, MigrationState.GATE_FAILED, MigrationState.GATE_ERROR)
PROPOSED_STATES = (MigrationState.ROLLOUT_DRAFTED, MigrationState.ROLLOUT_STARTED)


class AutopilotSetting(models.Model):
    """What the autopilot may do in one environment without a person."""

    environment = models.OneToOneField(
        "flags.Environment", on_delete=models.CASCADE, related_name="autopilot_setting"
    )
    auto_start = models.BooleanField(
        default=False, help_text="Start the proposed rollout once its gate passes (off: a person starts it)"
    )
    use_batches = models.BooleanField(
        default=False,
        help_text="Run the gate's evals through the Message Batches API (half the price, up to a day)",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"autopilot in {self.environment_id}"


class MigrationQuerySet(models.QuerySet["Migration"]):
    def open(self) -> MigrationQuerySet:
        return self.filter(state__in=OPEN_STATES)

    def for_page(self) -> MigrationQuerySet:
        return self.select_related(
            "flag",
            "environment",
            "base_version",
            "draft_version",
            "run",
            "baseline_run",
            "verdict",
            "rollout",
        ).order_by("-created_at", "-id")


class Migration(models.Model):
    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="migrations")
    environment = models.ForeignKey("flags.Environment", on_delete=models.PROTECT, related_name="migrations")
    from_model = models.CharField(max_length=100)
    to_model = models.CharField(max_length=100)
    retires_at = models.DateField(null=True, blank=True, help_text="The old model's retirement, as drafted")
    base_version = models.ForeignKey("flags.ConfigVersion", on_delete=models.PROTECT, related_name="+")
    draft_version = models.ForeignKey("flags.ConfigVersion", on_delete=models.PROTECT, related_name="+")
    changes = models.JSONField(default=list, help_text="[{path, before, after, reason}] as drafted")
    diff = models.JSONField(default=dict, help_text="flags.diff of the base and the draft")
    state = models.CharField(max_length=20, choices=MigrationState.choices)
    mode = models.CharField(max_length=16, help_text="How the gate's evals run: messages or batch")
    run = models.ForeignKey(
        "evals.EvalRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    baseline_run = models.ForeignKey(
        "evals.EvalRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verdict = models.ForeignKey(
        "evals.GateVerdict", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    failures = models.JSONField(
        default=dict, blank=True, help_text="The failed cases and scorers when the gate fails"
    )
    detail = models.TextField(blank=True, help_text="Where the migration stands, in words")
    rollout = models.ForeignKey(
        "rollouts.Rollout", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MigrationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(state__in=OPEN_STATES),
                name="migration_one_open_per_flag_environment",
            ),
            models.CheckConstraint(
                condition=(Q(state__in=PROPOSED_STATES) & Q(rollout__isnull=False))
                | (~Q(state__in=PROPOSED_STATES) & Q(rollout__isnull=True)),
                name="migration_rollout_only_when_proposed",
            ),
        ]

    def __str__(self) -> str:
        return f"migration {self.pk}: {self.from_model} -> {self.to_model}"
