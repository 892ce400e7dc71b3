"""The gate: a policy per flag, and the stored verdict per (version, eval set version, policy)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class VersionPolicy(models.TextChoices):
    PINNED = "pinned", "A pinned eval set version"
    LATEST = "latest", "The eval set's latest version"


class GatePolicy(models.Model):
    flag = models.OneToOneField("flags.Flag", on_delete=models.CASCADE, related_name="gate_policy")
    eval_set = models.ForeignKey("evals.EvalSet", on_delete=models.PROTECT, related_name="gate_policies")
    version_policy = models.CharField(
        max_length=16, choices=VersionPolicy.choices, default=VersionPolicy.LATEST
    )
    pinned_version = models.ForeignKey(
        "evals.EvalSetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    required_pass_rate = models.FloatField(help_text="The Wilson 95 % lower bound must clear it (0..1)")
    margin = models.FloatField(default=0.02, help_text="Non-inferiority margin δ against the serving version")
    max_cost_per_case_micro_usd = models.BigIntegerField(null=True, blank=True)
    max_p95_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(version_policy=VersionPolicy.PINNED) & Q(pinned_version__isnull=False))
                | (Q(version_policy=VersionPolicy.LATEST) & Q(pinned_version__isnull=True)),
                name="gate_policy_pinned_needs_version",
            ),
            models.CheckConstraint(
                condition=Q(required_pass_rate__gte=0) & Q(required_pass_rate__lte=1),
                name="gate_policy_pass_rate_range",
            ),
            models.CheckConstraint(
                condition=Q(margin__gte=0) & Q(margin__lte=1), name="gate_policy_margin_range"
            ),
            models.CheckConstraint(
                condition=Q(max_cost_per_case_micro_usd__isnull=True) | Q(max_cost_per_case_micro_usd__gte=0),
                name="gate_policy_cost_ceiling_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"gate of {self.flag_id}"


class GateVerdict(models.Model):
    """The gate's verdict with its evidence; an Approver's override is kept beside it, never over it."""

    config_version = models.ForeignKey(
        "flags.ConfigVersion", on_delete=models.PROTECT, related_name="gate_verdicts"
    )
    eval_set_version = models.ForeignKey(
        "evals.EvalSetVersion", on_delete=models.PROTECT, related_name="gate_verdicts"
    )
    policy_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical policy")
    policy = models.JSONField(help_text="The policy as it was when judged")
    passed = models.BooleanField()
    evidence = models.JSONField(default=dict)
    run = models.ForeignKey("evals.EvalRun", on_delete=models.PROTECT, related_name="gate_verdicts")
    baseline_run = models.ForeignKey(
        "evals.EvalRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    override_by = models.CharField(max_length=200, blank=True)
    override_reason = models.TextField(blank=True)
    overridden_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["config_version", "eval_set_version", "policy_hash"], name="gate_verdict_unique_key"
            ),
            models.CheckConstraint(
                condition=(Q(overridden_at__isnull=True) & Q(override_by="") & Q(override_reason=""))
                | (Q(overridden_at__isnull=False) & ~Q(override_by="") & ~Q(override_reason="")),
                name="gate_verdict_override_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"gate verdict {self.pk}: {'pass' if self.passed else 'fail'}"

    @property
    def is_overridden(self) -> bool:
        return self.overridden_at is not None
