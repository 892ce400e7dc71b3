"""Eval sets: a keyed set of immutable, numbered versions, each an ordered list of cases."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from evals.models.base import ImmutableModel
from flags.models import KEY_VALIDATOR, Surface

MAX_CASES_PER_VERSION = 10_000
MAX_CASE_BYTES = 1024 * 1024


class EvalSet(models.Model):
    key = models.CharField(max_length=100, unique=True, validators=[KEY_VALIDATOR])
    description = models.TextField(blank=True)
    # Flags are archived, never deleted; PROTECT keeps an eval set from losing its owner silently.
    flag = models.ForeignKey(
        "flags.Flag", null=True, blank=True, on_delete=models.PROTECT, related_name="eval_sets"
    )
    surface = models.CharField(max_length=16, choices=Surface.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class VersionSource(models.TextChoices):
    EDITOR = "editor", "Written in the editor"
    IMPORT = "import", "Imported"
    SAMPLES = "samples", "Sampled production calls"
    API = "api", "Created through the API"


class EvalSetVersionQuerySet(models.QuerySet["EvalSetVersion"]):
    def for_set(self, eval_set: EvalSet) -> EvalSetVersionQuerySet:
        return self.filter(eval_set=eval_set).order_by("-number")


class EvalSetVersion(ImmutableModel):
    """One immutable, numbered list of cases; editing a set creates the next version."""

    eval_set = models.ForeignKey(EvalSet, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    source = models.CharField(max_length=16, choices=VersionSource.choices)
    message = models.TextField(blank=True)
    author_name = models.CharField(max_length=200)
    case_count = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, help_text="SHA-256 over the ordered case hashes")
    scorers = models.JSONField(
        default=list,
        blank=True,
        help_text="Scorer specs validated by evals.scorers: "
        '[{"name", "key", "params", "weight", "threshold", "required"}]',
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EvalSetVersionQuerySet.as_manager()

    class Meta:
        ordering = ["eval_set", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["eval_set", "number"], name="eval_set_version_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="eval_set_version_number_gte_1"),
            models.CheckConstraint(
                condition=Q(case_count__lte=MAX_CASES_PER_VERSION), name="eval_set_version_case_count_limit"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.eval_set_id and self.eval_set.key} v{self.number}"


class EvalCase(ImmutableModel):
    """A case of one version: the conversation to send, what to expect, and how to judge it."""

    # A case is part of its version (which is never deleted); runs and labels PROTECT the case.
    version = models.ForeignKey(EvalSetVersion, on_delete=models.CASCADE, related_name="cases")
    position = models.PositiveIntegerField(help_text="0-based order within the version")
    case_hash = models.CharField(
        max_length=64, help_text="SHA-256 of the canonical JSON of input, reference and assertions"
    )
    input = models.JSONField(help_text='{"messages": [...], "variables": {...}}')
    reference = models.JSONField(null=True, blank=True, help_text='{"text"?, "json"?, "tool_calls"?} or null')
    assertions = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    origin = models.CharField(
        max_length=200, blank=True, help_text="request_id of the sampled call the case was made from"
    )

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="eval_case_unique_position"),
            models.UniqueConstraint(fields=["version", "case_hash"], name="eval_case_unique_hash"),
            models.CheckConstraint(
                condition=Q(position__lt=MAX_CASES_PER_VERSION), name="eval_case_position_limit"
            ),
        ]

    def __str__(self) -> str:
        return f"case {self.position} of {self.version_id}"
