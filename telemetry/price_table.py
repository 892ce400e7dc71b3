"""The price table built from the model catalog, cached per process for a short while.

Ingest prices every call; reading the catalog once per request would be cheap, once per
`FLAGSTAFF_PRICE_CACHE_SECONDS` is cheaper and a catalog change is still seen within that time.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

from flags.models import ClaudeModel
from telemetry.pricing import ModelPricing, Price, PriceTable

_lock = threading.Lock()
_cached: tuple[float, PriceTable] | None = None


def load_price_table() -> PriceTable:
    """Every model of the catalog with its prices, under its id and its aliases (two queries)."""
    models = []
    for row in ClaudeModel.objects.with_prices():
        prices = tuple(
            Price(
                token_type=price.token_type,
                usd_per_mtok=price.usd_per_mtok,
                effective_from=price.effective_from,
                tier=price.tier,
                context=price.context,
            )
            for price in row.prices.all()
        )
        models.append(
            ModelPricing(
                model_id=row.model_id,
                prices=prices,
                supports_inference_geo=bool(row.capabilities.get("supports_inference_geo", False)),
                aliases=tuple(row.aliases),
            )
        )
    return PriceTable(models)


def cached_price_table() -> PriceTable:
    global _cached
    ttl = settings.FLAGSTAFF_PRICE_CACHE_SECONDS
    now = time.monotonic()
    cached = _cached
    if cached is not None and now - cached[0] < ttl:
        return cached[1]
    with _lock:
        table = load_price_table()
        _cached = (now, table)
    return table


def clear_price_cache() -> None:
    """Forget the cached table (after a catalog change in tests or a management command)."""
    global _cached
    _cached = None
