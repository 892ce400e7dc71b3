"""Imports of the Claude Console's Usage export, and the usage they hold per API key and model.

An import is also the quarterly review the deploy checklist asks for: a person downloaded the
Console's usage, uploaded it, and was shown which keys use deprecated or retiring models.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class ConsoleUsageImport(models.Model):
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(help_text="Usage rows in the file")
    period_start = models.DateField()
    period_end = models.DateField()
    imported_by = models.CharField(max_length=200)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-imported_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_start__lte=models.F("period_end")), name="console_import_period_ordered"
            )
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.period_start}..{self.period_end})"


class ConsoleUsage(models.Model):
    """The tokens one API key in one workspace spent on one model over an import's period.

    `api_key` is "" for Console and Workbench usage (no key); `workspace` "" is the default one.
    """

    usage_import = models.ForeignKey(ConsoleUsageImport, on_delete=models.CASCADE, related_name="usage")
    api_key = models.CharField(max_length=200, blank=True)
    workspace = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=100)
    first_date = models.DateField()
    last_date = models.DateField()
    rows = models.PositiveIntegerField()
    input_tokens = models.BigIntegerField(default=0, help_text="Uncached input tokens")
    cache_write_5m_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["usage_import", "api_key", "workspace", "model"]
        constraints = [
            models.UniqueConstraint(
                fields=["usage_import", "api_key", "workspace", "model"],
                name="console_usage_unique_key_model",
            )
        ]

    def __str__(self) -> str:
        return f"{self.api_key or '(Console)'} {self.model}"
