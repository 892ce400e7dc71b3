"""Rollback rehearsals: their schedules per flag × environment and each rehearsal's run and
result (rollouts/services/rehearsals.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Q
from django.utils.timesince import timesince

from rollouts.models.rollouts import Rollout

if TYPE_CHECKING:
    from flags.models import Environment, Flag


class RehearsalState(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Not run"


REHEARSAL_ACTIVE_STATES = (RehearsalState.PENDING, RehearsalState.RUNNING)
REHEARSAL_FINISHED_STATES = (RehearsalState.PASSED, RehearsalState.FAILED, RehearsalState.SKIPPED)


class RehearsalTrigger(models.TextChoices):
    MANUAL = "manual", "On demand"
    SCHEDULE = "schedule", "On its schedule"


class RehearsalScheduleQuerySet(models.QuerySet["RehearsalSchedule"]):
    def due(self, now: object) -> RehearsalScheduleQuerySet:
        return self.filter(enabled=True, next_run_at__lte=now)


class RehearsalSchedule(models.Model):
    """A flag × environment rehearsed every `interval_seconds`: the due row is the work, taken by
    one beat sweep only (a conditional UPDATE of `next_run_at`)."""

    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="rehearsal_schedules")
    environment = models.ForeignKey(
        "flags.Environment", on_delete=models.PROTECT, related_name="rehearsal_schedules"
    )
    interval_seconds = models.PositiveIntegerField(help_text="e.g. 604800: weekly")
    next_run_at = models.DateTimeField()
    enabled = models.BooleanField(default=True)
    created_by_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RehearsalScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["flag", "environment"]
        constraints = [
            models.UniqueConstraint(fields=["flag", "environment"], name="rehearsal_schedule_one_per_pair"),
            models.CheckConstraint(
                condition=Q(interval_seconds__gte=1), name="rehearsal_schedule_interval_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["next_run_at"], condition=Q(enabled=True), name="rehearsal_schedule_due_idx")
        ]

    def __str__(self) -> str:
        return f"rehearsal of {self.flag_id} in {self.environment_id} every {self.interval_seconds} s"

    @property
    def interval_in_words(self) -> str:
        """The interval as people say it, in at most two units: "1 week", "1 hour, 30 minutes"."""
        start = datetime(2000, 1, 1, tzinfo=UTC)  # any moment: the words depend on the length only
        return timesince(start, start + timedelta(seconds=self.interval_seconds))


class RollbackRehearsalQuerySet(models.QuerySet["RollbackRehearsal"]):
    def active(self) -> RollbackRehearsalQuerySet:
        return self.filter(state__in=REHEARSAL_ACTIVE_STATES)

    def for_pair(self, flag: Flag, environment: Environment) -> RollbackRehearsalQuerySet:
        return self.filter(flag=flag, environment=environment)


class RollbackRehearsal(models.Model):
    """One rehearsal of the one-motion rollback: a small canary of a no-op candidate (the serving
    content as a new version), rolled back, and the propagation of the rollback measured three
    ways (rollouts/services/rehearsals.py). Kept for good; the deploy checklist reads the latest."""

    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="rehearsals")
    environment = models.ForeignKey("flags.Environment", on_delete=models.PROTECT, related_name="rehearsals")
    schedule = models.ForeignKey(
        RehearsalSchedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="rehearsals"
    )
    trigger = models.CharField(max_length=16, choices=RehearsalTrigger.choices)
    state = models.CharField(max_length=16, choices=RehearsalState.choices, default=RehearsalState.PENDING)
    started_by = models.CharField(max_length=200, help_text="The person, token or schedule that started it")
    reason = models.TextField(blank=True)
    rollout = models.ForeignKey(
        Rollout, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Its canary"
    )
    candidate = models.ForeignKey(
        "flags.ConfigVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    threshold_seconds = models.FloatField(help_text="Slower than this (any of the three times) fails")
    snapshot_seconds = models.FloatField(
        null=True, blank=True, help_text="Rollback to the API's snapshot serving the new revision"
    )
    stream_seconds = models.FloatField(
        null=True, blank=True, help_text="Rollback to every connected change stream having it"
    )
    probe_seconds = models.FloatField(
        null=True,
        blank=True,
        help_text="Rollback to the probe client resolving the baseline for canary units",
    )
    clients_connected = models.PositiveIntegerField(null=True, blank=True)
    clients_reached = models.PositiveIntegerField(null=True, blank=True)
    steps = models.JSONField(default=list, blank=True, help_text="[{step, at, detail}] in order")
    failures = models.JSONField(default=list, blank=True, help_text="What went wrong, in words")
    outcome = models.TextField(blank=True, help_text="One sentence: the result and the three times")
    incident = models.ForeignKey(
        "telemetry.Incident", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RollbackRehearsalQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(state__in=REHEARSAL_ACTIVE_STATES),
                name="rehearsal_one_active_per_flag_environment",
            ),
            models.CheckConstraint(
                condition=Q(state__in=REHEARSAL_FINISHED_STATES) | Q(finished_at__isnull=True),
                name="rehearsal_finished_only_when_done",
            ),
            models.CheckConstraint(condition=Q(threshold_seconds__gt=0), name="rehearsal_threshold_positive"),
        ]
        indexes = [
            models.Index(fields=["flag", "environment", "-requested_at"], name="rehearsal_flag_env_idx"),
        ]

    def __str__(self) -> str:
        return f"rehearsal {self.pk}: {self.state}"

    @property
    def is_active(self) -> bool:
        return self.state in REHEARSAL_ACTIVE_STATES
