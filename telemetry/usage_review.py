"""Read model of the Console usage review: when it last happened, and what it showed.

`last_usage_review()` is what the deploy checklist's "Console usage export reviewed this
quarter" item reads; `exposed_usage()` is the review itself: which API keys and workspaces
spend tokens on deprecated or retiring models, with the days left before retirement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Q
from django.utils import timezone

from flags.models import ClaudeModel, Lifecycle
from telemetry.models.console_usage import ConsoleUsage, ConsoleUsageImport


@dataclass(frozen=True, slots=True)
class UsageReview:
    at: datetime
    by: str
    filename: str
    period_start: date
    period_end: date
    import_id: int


def last_usage_review() -> UsageReview | None:
    """The latest Console usage import (the review), or None if there never was one."""
    latest = ConsoleUsageImport.objects.order_by("-imported_at", "-id").first()
    if latest is None:
        return None
    return UsageReview(
        at=latest.imported_at,
        by=latest.imported_by,
        filename=latest.filename,
        period_start=latest.period_start,
        period_end=latest.period_end,
        import_id=latest.pk,
    )


@dataclass(frozen=True, slots=True)
class ExposedUsage:
    api_key: str
    workspace: str
    model: str
    lifecycle: str
    retires_at: date | None
    replacement: str
    days_left: int | None
    last_date: date
    input_tokens: int
    output_tokens: int


def exposed_usage(usage_import: ConsoleUsageImport, *, today: date | None = None) -> list[ExposedUsage]:
    """Usage of the import on models that are deprecated, retired or have a retirement date,
    soonest retirement first."""
    today = today or timezone.now().date()
    catalog: dict[str, ClaudeModel] = {}
    for row in ClaudeModel.objects.filter(~Q(lifecycle=Lifecycle.ACTIVE) | Q(retires_at__isnull=False)):
        for model_id in (row.model_id, *row.aliases):
            catalog[model_id] = row
    found = []
    for usage in ConsoleUsage.objects.filter(usage_import=usage_import, model__in=list(catalog)):
        model = catalog[usage.model]
        found.append(
            ExposedUsage(
                api_key=usage.api_key,
                workspace=usage.workspace,
                model=usage.model,
                lifecycle=model.lifecycle,
                retires_at=model.retires_at,
                replacement=model.replacement,
                days_left=(model.retires_at - today).days if model.retires_at else None,
                last_date=usage.last_date,
                input_tokens=usage.input_tokens
                + usage.cache_read_tokens
                + usage.cache_write_5m_tokens
                + usage.cache_write_1h_tokens,
                output_tokens=usage.output_tokens,
            )
        )
    return sorted(
        found, key=lambda u: (u.days_left is None, u.days_left or 0, u.api_key, u.workspace, u.model)
    )
