"""Judge calibration: human labels per judge flag, the judge's verdicts on them, and κ per version.

A label belongs to the judge (a flag of surface `judge`), not to one of its versions: a new
judge version is calibrated again on the same human labels without relabelling anything.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from evals.agreement import ACTING_MIN_KAPPA, ACTING_MIN_LABELS, is_acting
from evals.models.base import SCORE_OR_ERROR


class JudgeLabel(models.Model):
    """A human's pass/fail on one answer to one case, the ground truth the judge is compared with."""

    judge = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="judge_labels")
    case = models.ForeignKey("evals.EvalCase", on_delete=models.PROTECT, related_name="judge_labels")
    response = models.TextField(help_text="The answer that was judged")
    human_passed = models.BooleanField()
    labelled_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["judge", "case__version", "case__position"]
        constraints = [models.UniqueConstraint(fields=["judge", "case"], name="judge_label_unique_case")]

    def __str__(self) -> str:
        return f"label of case {self.case_id} for judge {self.judge_id}"


class JudgeVerdict(models.Model):
    """One judge version's verdict on one labelled answer; an error is not a disagreement."""

    judge_version = models.ForeignKey(
        "flags.ConfigVersion", on_delete=models.PROTECT, related_name="judge_verdicts"
    )
    label = models.ForeignKey(JudgeLabel, on_delete=models.CASCADE, related_name="verdicts")
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    error = models.TextField(blank=True)
    explanation = models.TextField(blank=True)
    cost_micro_usd = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["judge_version", "label"], name="judge_verdict_unique_label"),
            models.CheckConstraint(condition=SCORE_OR_ERROR, name="judge_verdict_result_or_error"),
            models.CheckConstraint(
                condition=Q(cost_micro_usd__gte=0), name="judge_verdict_cost_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"verdict of {self.judge_version_id} on label {self.label_id}"


class JudgeCalibrationQuerySet(models.QuerySet["JudgeCalibration"]):
    def latest_for(self, judge_version_id: int) -> JudgeCalibration | None:
        return self.filter(judge_version_id=judge_version_id).order_by("-computed_at", "-id").first()


class JudgeCalibration(models.Model):
    """Agreement and Cohen's κ of one judge version with the human labels, as computed then."""

    judge_version = models.ForeignKey(
        "flags.ConfigVersion", on_delete=models.PROTECT, related_name="judge_calibrations"
    )
    n_labels = models.PositiveIntegerField(help_text="Labels with a verdict (errors excluded)")
    agreement = models.FloatField(null=True, blank=True)
    kappa = models.FloatField(null=True, blank=True, help_text="Null when undefined (e.g. no labels)")
    computed_by = models.CharField(max_length=200)
    computed_at = models.DateTimeField(auto_now_add=True)

    objects = JudgeCalibrationQuerySet.as_manager()

    class Meta:
        ordering = ["-computed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(agreement__isnull=True) | (Q(agreement__gte=0) & Q(agreement__lte=1)),
                name="judge_calibration_agreement_range",
            ),
            models.CheckConstraint(
                condition=Q(kappa__isnull=True) | (Q(kappa__gte=-1) & Q(kappa__lte=1)),
                name="judge_calibration_kappa_range",
            ),
        ]

    def __str__(self) -> str:
        return f"calibration of {self.judge_version_id}: κ={self.kappa}"

    @property
    def is_acting(self) -> bool:
        """Acting with κ ≥ ACTING_MIN_KAPPA on ≥ ACTING_MIN_LABELS labels, else advisory."""
        return is_acting(kappa=self.kappa, n_labels=self.n_labels)


__all__ = ["ACTING_MIN_KAPPA", "ACTING_MIN_LABELS", "JudgeCalibration", "JudgeLabel", "JudgeVerdict"]
