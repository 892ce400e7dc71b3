"""The notices of the deprecation watch: each runway threshold, notified once."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from deprecations.runway import RETIRED, SEVERITIES, THRESHOLDS


class DeprecationNotice(models.Model):
    """One runway threshold reached by one model that a flag serves in one environment.

    The row is the "notified once" guard: its unique constraint admits one notice per model,
    flag, environment and threshold, so a repeated or concurrent check notifies nothing twice.
    It also logs what was said: the severity, the days left and the incident it opened or
    escalated.
    """

    model = models.ForeignKey("flags.ClaudeModel", on_delete=models.PROTECT, related_name="+")
    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="+")
    environment = models.ForeignKey("flags.Environment", on_delete=models.PROTECT, related_name="+")
    threshold_days = models.PositiveSmallIntegerField(help_text="60, 30, 14, 7, 1, or 0: retired")
    severity = models.CharField(max_length=16, choices=[(name, name.title()) for name in SEVERITIES])
    retires_at = models.DateField(null=True, blank=True, help_text="The retirement date when notified")
    days_left = models.IntegerField(null=True, blank=True)
    incident = models.ForeignKey(
        "telemetry.Incident", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    notified_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-notified_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "flag", "environment", "threshold_days"],
                name="deprecation_notice_once_per_threshold",
            ),
            models.CheckConstraint(
                condition=Q(threshold_days__in=[*THRESHOLDS, RETIRED]),
                name="deprecation_notice_known_threshold",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} {self.threshold_days} d: flag {self.flag_id} env {self.environment_id}"
