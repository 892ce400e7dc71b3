"""The deploy checklist: the items an environment requires (ChecklistPolicy) and the attested
items and waivers people sign (ChecklistSignoff); the items themselves are in rollouts/checklist/."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from rollouts.models.experiments import Experiment
from rollouts.models.rollouts import Rollout


class ChecklistPolicy(models.Model):
    """Which checklist items an environment requires before a rollout or experiment starts.

    Without a row the default holds (rollouts/checklist: every item where the environment is
    protected, the computed ones elsewhere); an Admin writes a row to change it.
    """

    environment = models.OneToOneField(
        "flags.Environment", on_delete=models.CASCADE, related_name="checklist_policy"
    )
    required = models.JSONField(default=list, help_text="The keys of the required items")
    updated_by_name = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"checklist policy of {self.environment_id}"


class SignoffKind(models.TextChoices):
    ATTESTED = "attested", "Attested"
    WAIVED = "waived", "Waived"


class ChecklistSignoff(models.Model):
    """A person's word on one checklist item of a rollout or an experiment, kept for good: an
    attestation of an item no data can show (with a note), or an Approver's waiver of an item
    that is red (with a reason)."""

    rollout = models.ForeignKey(
        Rollout, null=True, blank=True, on_delete=models.PROTECT, related_name="signoffs"
    )
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.PROTECT, related_name="signoffs"
    )
    item = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=SignoffKind.choices)
    note = models.TextField(help_text="The attestation's note, or the waiver's reason")
    actor_kind = models.CharField(max_length=16)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(rollout__isnull=False) & Q(experiment__isnull=True))
                | (Q(rollout__isnull=True) & Q(experiment__isnull=False)),
                name="signoff_one_subject",
            ),
            models.CheckConstraint(condition=~Q(note=""), name="signoff_note_not_empty"),
            models.UniqueConstraint(
                fields=["rollout", "item", "kind"],
                condition=Q(rollout__isnull=False),
                name="signoff_one_per_rollout_item_kind",
            ),
            models.UniqueConstraint(
                fields=["experiment", "item", "kind"],
                condition=Q(experiment__isnull=False),
                name="signoff_one_per_experiment_item_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.item} by {self.actor_name}"
