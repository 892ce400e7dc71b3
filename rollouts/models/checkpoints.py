"""The analysis tick's checkpoints of per-arm sums up to a settled minute
(rollouts/aggregate_checkpoints.py)."""

from __future__ import annotations

from django.db import models


class AggregateCheckpoint(models.Model):
    """The per-arm sums of a flag × environment's analysis window up to a settled minute, so that
    a tick reads these plus only the rollup rows after them (rollouts/aggregate_checkpoints.py).

    One row per flag × environment (at most one rollout or experiment is active there): a
    window that differs from the one the sums were made for (another stage start, arms,
    versions or metric sources) starts from its first minute again and replaces the row.
    """

    flag = models.ForeignKey("flags.Flag", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey("flags.Environment", on_delete=models.CASCADE, related_name="+")
    since = models.DateTimeField(help_text="The window's first minute")
    arms = models.JSONField(help_text="Arm name -> the version number it serves")
    sources = models.JSONField(help_text="The histogram metrics and scorers summed, sorted")
    settled_until = models.DateTimeField(help_text="The sums hold the rows of the minutes before this one")
    sums = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"], name="aggregate_checkpoint_unique_window"
            ),
        ]

    def __str__(self) -> str:
        return f"checkpoint of flag {self.flag_id} in {self.environment_id} until {self.settled_until:%H:%M}"
