"""The model catalog page: Claude models by line and lifecycle, with the prices in force today."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from flags.models import ClaudeModel, Lifecycle

# Column label and the (token type, tier) prices it shows; input and output come first.
PRICE_COLUMNS = (
    ("Input", (("input", "standard"),)),
    ("Output", (("output", "standard"),)),
    ("Cache write 5m / 1h", (("cache_write_5m", "standard"), ("cache_write_1h", "standard"))),
    ("Cache read", (("cache_read", "standard"),)),
    ("Batch in / out", (("input", "batch"), ("output", "batch"))),
)
LIFECYCLE_ORDER: dict[str, int] = {Lifecycle.ACTIVE: 0, Lifecycle.DEPRECATED: 1, Lifecycle.RETIRED: 2}


def _current_prices(model: ClaudeModel, today: date) -> dict[tuple[str, str, str], Decimal]:
    """The price in force today for each token type, tier and context."""
    current: dict[tuple[str, str, str], Decimal] = {}
    for price in sorted(model.prices.all(), key=lambda price: price.effective_from):
        if price.effective_from <= today:
            current[(price.token_type, price.tier, price.context)] = price.usd_per_mtok
    return current


def _usd(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return f"${value:.2f}" if value == round(value, 2) else f"${value.normalize()}"


def model_row(model: ClaudeModel, today: date) -> dict[str, Any]:
    prices = _current_prices(model, today)
    days = (model.retires_at - today).days if model.retires_at else None
    contexts = sorted({context for (_, _, context) in prices if context})
    return {
        "model": model,
        "days_to_retirement": days,
        "days_since_retirement": -days if days is not None and days < 0 else None,
        "prices": [
            " / ".join(_usd(prices.get((token_type, tier, ""))) for token_type, tier in kinds)
            for _, kinds in PRICE_COLUMNS
        ],
        # Rows that apply to some requests only, e.g. every token of a prompt over 100k tokens.
        "context_prices": [(context.replace("_", " "), _price_list(prices, context)) for context in contexts],
    }


def _price_list(prices: dict[tuple[str, str, str], Decimal], context: str) -> str:
    return " · ".join(
        f"{label.lower()} "
        + " / ".join(_usd(prices.get((token_type, tier, context))) for token_type, tier in kinds)
        for label, kinds in PRICE_COLUMNS
        if any((token_type, tier, context) in prices for token_type, tier in kinds)
    )


def _catalog_order(models: Iterable[ClaudeModel]) -> list[ClaudeModel]:
    """By line, then active before deprecated before retired, newest id first."""
    newest_first = sorted(models, key=lambda model: model.model_id, reverse=True)
    return sorted(newest_first, key=lambda model: (model.line or "~", LIFECYCLE_ORDER[model.lifecycle]))


@login_required
def model_catalog(request: HttpRequest) -> HttpResponse:
    today = timezone.now().date()
    models = _catalog_order(ClaudeModel.objects.with_prices())
    groups = [
        (line or "other", [model_row(model, today) for model in group])
        for line, group in groupby(models, key=lambda model: model.line)
    ]
    context = {"groups": groups, "price_columns": [label for label, _ in PRICE_COLUMNS], "today": today}
    return render(request, "flags/models.html", context)


# The editor's model picker: the token types and order its price line shows (standard tier).
EDITOR_PRICES = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


def editor_models(today: date) -> list[dict[str, Any]]:
    """What the version editor's model picker shows and limits fields by, catalog order."""
    rows = []
    for model in _catalog_order(ClaudeModel.objects.with_prices()):
        prices = _current_prices(model, today)
        capabilities = model.capabilities
        rows.append(
            {
                "id": model.model_id,
                "aliases": model.aliases,
                "display_name": model.display_name,
                "lifecycle": model.lifecycle,
                "retires_at": model.retires_at.isoformat() if model.retires_at else None,
                "replacement": model.replacement,
                "max_tokens": model.max_tokens,
                "context_window": model.context_window,
                "effort_levels": capabilities.get("effort_levels", []),
                "thinking_types": capabilities.get("thinking_types", []),
                "efforts_requiring_thinking": capabilities.get("efforts_requiring_thinking", []),
                "prices": {
                    token_type: _usd(prices[(token_type, "standard", "")])
                    for token_type in EDITOR_PRICES
                    if (token_type, "standard", "") in prices
                },
            }
        )
    return rows
