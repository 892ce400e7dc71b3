"""Changes scheduled for later: a publish, a split or a rollout start at a given time
(rollouts/services/scheduling.py)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from flagstaff.engine import BUCKETS
from rollouts.models.rollouts import Rollout


class ScheduledChangeKind(models.TextChoices):
    PUBLISH = "publish", "Publish a version"
    ENABLE = "enable", "Enable the flag"
    DISABLE = "disable", "Disable the flag"
    START_ROLLOUT = "start_rollout", "Start a rollout"
    SPLIT = "split", "Change the split"


class ScheduledChangeState(models.TextChoices):
    PENDING = "pending", "Waiting for its time"
    APPLIED = "applied", "Applied"
    SKIPPED = "skipped", "Skipped (its preconditions no longer held)"
    CANCELLED = "cancelled", "Cancelled"


class ScheduledChangeQuerySet(models.QuerySet["ScheduledChange"]):
    def pending(self) -> ScheduledChangeQuerySet:
        return self.filter(state=ScheduledChangeState.PENDING)

    def due(self, now: object) -> ScheduledChangeQuerySet:
        return self.pending().filter(run_at__lte=now)


class ScheduledChange(models.Model):
    """A change to a flag in an environment, stored until its time and then applied once.

    The row is the due work (beat only nudges the sweep); its `state` leaves `pending` by one
    conditional UPDATE in the transaction that applies it (rollouts/services/scheduling.py).
    Who scheduled it is kept as plain values, like the audit log, and the change is applied in
    their name so that what their own request would need (a reason, an approval) applies.
    """

    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="scheduled_changes")
    environment = models.ForeignKey(
        "flags.Environment", on_delete=models.PROTECT, related_name="scheduled_changes"
    )
    kind = models.CharField(max_length=16, choices=ScheduledChangeKind.choices)
    version_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="publish: the version; split: the candidate"
    )
    weight = models.PositiveIntegerField(null=True, blank=True, help_text="split: basis points (100 = 1 %)")
    rollout = models.ForeignKey(
        Rollout, null=True, blank=True, on_delete=models.PROTECT, related_name="scheduled_changes"
    )
    run_at = models.DateTimeField()
    reason = models.TextField(blank=True)
    state = models.CharField(
        max_length=16, choices=ScheduledChangeState.choices, default=ScheduledChangeState.PENDING
    )
    outcome_code = models.CharField(max_length=64, blank=True)
    outcome = models.TextField(blank=True, help_text="What applying it did, or why it was skipped")
    created_by_kind = models.CharField(max_length=8)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    created_by_name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by_name = models.CharField(max_length=200, blank=True)

    objects = ScheduledChangeQuerySet.as_manager()

    class Meta:
        ordering = ["run_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind=ScheduledChangeKind.PUBLISH, version_number__isnull=False)
                    | Q(kind=ScheduledChangeKind.SPLIT, version_number__isnull=False, weight__isnull=False)
                    | Q(kind=ScheduledChangeKind.START_ROLLOUT, rollout__isnull=False)
                    | Q(kind__in=[ScheduledChangeKind.ENABLE, ScheduledChangeKind.DISABLE])
                ),
                name="scheduled_change_has_its_arguments",
            ),
            models.CheckConstraint(
                condition=Q(state=ScheduledChangeState.PENDING) | Q(ended_at__isnull=False),
                name="scheduled_change_ended_unless_pending",
            ),
            models.CheckConstraint(
                condition=Q(weight__isnull=True) | Q(weight__lte=BUCKETS),
                name="scheduled_change_weight_in_range",
            ),
        ]
        indexes = [
            models.Index(fields=["run_at"], condition=Q(state="pending"), name="scheduled_change_due_idx"),
            models.Index(fields=["flag", "environment", "run_at"], name="scheduled_change_flag_env_idx"),
        ]

    def __str__(self) -> str:
        return f"scheduled change {self.pk}: {self.describe()}"

    def describe(self) -> str:
        """What the change does, in words."""
        where = f"'{self.flag.key}' in '{self.environment.key}'"
        if self.kind == ScheduledChangeKind.PUBLISH:
            return f"publish v{self.version_number} of {where}"
        if self.kind == ScheduledChangeKind.SPLIT:
            share = (self.weight or 0) / 100
            return f"serve v{self.version_number} to {share:g} % of {where}"
        if self.kind == ScheduledChangeKind.START_ROLLOUT:
            return f"start rollout {self.rollout_id} of {where}"
        return f"{self.kind} {where}"
