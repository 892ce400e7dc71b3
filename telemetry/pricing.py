"""The cost of one Claude call in integer micro-USD, from a price table with effective dates.

Pure logic, no Django: `telemetry/price_table.py` builds the table from the model catalog.

Rules (facts: shared/reference/anthropic-api.md §2 and §4.5, and the seed's notes):
- Token types: `input` (uncached input, `usage.input_tokens`), `output`, `cache_write_5m`,
  `cache_write_1h`, `cache_read`. Each is priced by the row of its (token type, tier, context)
  with the latest `effective_from` on or before the call's date (UTC).
- Tier: `service_tier == "batch"` prices with the `batch` rows; a token type without a batch
  row (the catalog has none for cache writes and reads) falls back to its standard row. Every
  other tier ("standard", "priority", none) uses the standard rows: Priority Tier is billed by
  commitment and never appears in the cost report.
- Long prompts: a model with rows whose context is `prompt_over_<N>k` (Haiku 5.5:
  `prompt_over_100k`) prices every token of a call whose prompt (uncached input + cache writes
  + cache reads) exceeds N thousand tokens with those rows. Contexts named otherwise are never
  selected. A token type missing from the selected context has no price (no fallback to the
  short-prompt rate, which would understate the cost).
- Inference geo: `inference_geo == "us"` multiplies the whole cost by 1.1, only for models that
  support choosing a geo (`supports_inference_geo` in the catalog: Opus 4.6 / Sonnet 4.6 and
  later); other models report `not_available` and pay no premium.
- An unknown model, or a token type with tokens but no price, gives None (unknown cost).
- Arithmetic is exact: 1 USD per million tokens is 1 micro-USD per token, so a price becomes an
  integer number of pico-USD per token (the catalog keeps 6 decimal places); the sum is rounded
  half up to micro-USD once per call.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

TOKEN_TYPES = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
STANDARD = "standard"
BATCH = "batch"
GEO_PREMIUM = {"us": (11, 10)}  # inference_geo -> multiplier as a fraction
PICO_PER_MICRO = 10**6
_LONG_PROMPT = re.compile(r"^prompt_over_(\d+)k$")


@dataclass(frozen=True, slots=True)
class Price:
    token_type: str
    usd_per_mtok: Decimal
    effective_from: date
    tier: str = STANDARD
    context: str = ""


@dataclass(frozen=True, slots=True)
class ModelPricing:
    """The prices of one model (any order), the ids it answers to, and whether geo applies."""

    model_id: str
    prices: tuple[Price, ...]
    supports_inference_geo: bool = False
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenCounts:
    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0

    @property
    def prompt(self) -> int:
        return self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read

    @classmethod
    def from_usage(cls, usage: Mapping[str, Any]) -> TokenCounts:
        """The counts of a Messages API `usage` object."""
        creation = usage.get("cache_creation")
        if isinstance(creation, Mapping):
            write_5m = int(creation.get("ephemeral_5m_input_tokens") or 0)
            write_1h = int(creation.get("ephemeral_1h_input_tokens") or 0)
        else:
            # Without the breakdown, cache writes are the default 5-minute ones.
            write_5m, write_1h = int(usage.get("cache_creation_input_tokens") or 0), 0
        return cls(
            input=int(usage.get("input_tokens") or 0),
            output=int(usage.get("output_tokens") or 0),
            cache_write_5m=write_5m,
            cache_write_1h=write_1h,
            cache_read=int(usage.get("cache_read_input_tokens") or 0),
        )


def _pico_per_token(usd_per_mtok: Decimal) -> int:
    return int((usd_per_mtok * PICO_PER_MICRO).to_integral_value(rounding=ROUND_HALF_UP))


class PricePlan(NamedTuple):
    """How a model prices the calls of one day, tier and geo (PriceTable.plan, `priced`)."""

    # (prompt tokens over which, rates), from the highest threshold down: the first exceeded
    # one prices the whole call.
    long_prompt: tuple[tuple[int, tuple[int | None, ...]], ...]
    # Pico-USD per token of each of TOKEN_TYPES (None: no price) for shorter prompts.
    rates: tuple[int | None, ...]
    premium: tuple[int, int] | None  # the geo premium as (numerator, denominator)


@dataclass(slots=True)
class _ModelSeries:
    supports_inference_geo: bool
    # (token_type, tier, context) -> (sorted effective dates, pico-USD per token at each)
    series: dict[tuple[str, str, str], tuple[list[date], list[int]]]
    # long-prompt contexts as (threshold in tokens, context name), highest first
    long_prompt: list[tuple[int, str]]


class PriceTable:
    """Prices of every model in the catalog, keyed by model id and alias."""

    def __init__(self, models: Iterable[ModelPricing]) -> None:
        self._by_id: dict[str, _ModelSeries] = {}
        # Rates resolved for (model, day, tier, context): a batch of calls mostly shares a few.
        self._rates: dict[tuple[str, date, str, str], tuple[int | None, ...]] = {}
        self._plans: dict[tuple[str, date, str, str], PricePlan] = {}
        for pricing in models:
            entry = _series_of(pricing)
            for model_id in (pricing.model_id, *pricing.aliases):
                self._by_id[model_id] = entry

    def knows(self, model: str) -> bool:
        return model in self._by_id

    def cost_micro_usd(
        self,
        *,
        model: str,
        on: date,
        tokens: TokenCounts,
        service_tier: str = "",
        inference_geo: str = "",
    ) -> int | None:
        """The call's cost in micro-USD, rounded half up; None when it cannot be known."""
        return priced(
            self.plan(model, on, service_tier, inference_geo),
            tokens.input,
            tokens.output,
            tokens.cache_write_5m,
            tokens.cache_write_1h,
            tokens.cache_read,
        )

    def plan(self, model: str, on: date, service_tier: str, inference_geo: str) -> PricePlan | None:
        """How every call of this model, day, tier and geo is priced (None: the model is
        unknown), for `priced`. Kept per table: ingest asks for it once per batch and key."""
        entry = self._by_id.get(model)
        if entry is None:
            return None
        tier = BATCH if service_tier == BATCH else STANDARD
        geo = inference_geo if entry.supports_inference_geo and inference_geo in GEO_PREMIUM else ""
        plan_key = (model, on, tier, geo)  # the senders' own strings never grow the table
        plan = self._plans.get(plan_key)
        if plan is None:
            plan = self._plans[plan_key] = PricePlan(
                tuple(
                    (threshold, self._rates_in(entry, model, on, tier, context))
                    for threshold, context in entry.long_prompt
                ),
                self._rates_in(entry, model, on, tier, ""),
                GEO_PREMIUM.get(geo),
            )
        return plan

    def pico_per_token(
        self, *, model: str, on: date, prompt_tokens: int = 0, service_tier: str = ""
    ) -> dict[str, int | None] | None:
        """Pico-USD per token of each token type for a call with a prompt of that size (None:
        the model is unknown; a type's None: it has no price). For projections that price
        token totals exactly and round once, and ignore the inference-geo premium."""
        entry = self._by_id.get(model)
        if entry is None:
            return None
        return dict(
            zip(TOKEN_TYPES, self._rates_of(entry, model, on, service_tier, prompt_tokens), strict=True)
        )

    def _rates_of(
        self, entry: _ModelSeries, model: str, on: date, service_tier: str, prompt_tokens: int
    ) -> tuple[int | None, ...]:
        tier = BATCH if service_tier == BATCH else STANDARD
        context = ""
        for threshold, name in entry.long_prompt:
            if prompt_tokens > threshold:
                context = name
                break
        return self._rates_in(entry, model, on, tier, context)

    def _rates_in(
        self, entry: _ModelSeries, model: str, on: date, tier: str, context: str
    ) -> tuple[int | None, ...]:
        rates_key = (model, on, tier, context)
        rates = self._rates.get(rates_key)
        if rates is None:
            rates = tuple(_rate(entry, token_type, tier, context, on) for token_type in TOKEN_TYPES)
            self._rates[rates_key] = rates
        return rates


def priced(
    plan: PricePlan | None,
    input_tokens: int,
    output_tokens: int,
    cache_write_5m: int,
    cache_write_1h: int,
    cache_read: int,
) -> int | None:
    """A call's cost in micro-USD under its plan, rounded half up; None when it cannot be
    known. telemetry/_speedups.c does the same arithmetic for the ingest loop
    (tests/telemetry/test_speedups.py compares them)."""
    if plan is None:
        return None
    rates = plan.rates
    prompt = input_tokens + cache_write_5m + cache_write_1h + cache_read
    for threshold, long_rates in plan.long_prompt:
        if prompt > threshold:
            rates = long_rates
            break
    total_pico = 0
    counts = (input_tokens, output_tokens, cache_write_5m, cache_write_1h, cache_read)
    for count, rate in zip(counts, rates, strict=True):
        if count:
            if rate is None:
                return None
            total_pico += count * rate
    if plan.premium is not None:
        numerator, denominator = plan.premium
        divisor = PICO_PER_MICRO * denominator
        return (total_pico * numerator + divisor // 2) // divisor
    return (total_pico + PICO_PER_MICRO // 2) // PICO_PER_MICRO


def _series_of(pricing: ModelPricing) -> _ModelSeries:
    grouped: dict[tuple[str, str, str], list[tuple[date, int]]] = {}
    for price in pricing.prices:
        key = (price.token_type, price.tier, price.context or "")
        grouped.setdefault(key, []).append((price.effective_from, _pico_per_token(price.usd_per_mtok)))
    series = {}
    for key, points in grouped.items():
        points.sort()
        series[key] = ([day for day, _ in points], [pico for _, pico in points])
    long_prompt = []
    for _, _, context in series:
        match = _LONG_PROMPT.match(context)
        if match:
            long_prompt.append((int(match.group(1)) * 1000, context))
    return _ModelSeries(pricing.supports_inference_geo, series, sorted(set(long_prompt), reverse=True))


def _rate(entry: _ModelSeries, token_type: str, tier: str, context: str, on: date) -> int | None:
    tiers = (tier, STANDARD) if tier != STANDARD else (STANDARD,)
    for candidate in tiers:
        found = entry.series.get((token_type, candidate, context))
        if found is None:
            continue
        days, picos = found
        index = bisect.bisect_right(days, on) - 1
        if index >= 0:
            return picos[index]
    return None
