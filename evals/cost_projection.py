"""What a config would cost per 1,000 calls: projected from an eval run's measured tokens, and
counterfactually from a flag's logged token counts. Pure: no Django.

- Prices are pico-USD per token of each token type (telemetry's price table, `pico_per_token`),
  so token totals are priced exactly and rounded half up to micro-USD once.
- "Without cache hits" prices the cache-read tokens as uncached input: what the calls would
  cost if the cache never hit.
- The counterfactual keeps the logged input side (uncached input, cache writes and reads) and
  scales the logged output tokens by the candidate's output/input ratio over the serving
  version's, both measured on the same eval set version: a candidate that answers at twice the
  length would have written twice the output on the real calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from telemetry.pricing import TOKEN_TYPES, TokenCounts

PICO_PER_MICRO = 10**6
CALLS_PER_QUOTE = 1000
Rates = Mapping[str, int | None]


def usage_tokens(usage: Mapping[str, Any]) -> TokenCounts:
    """The token counts of a Messages API `usage` (cache writes without the TTL split are 5-minute
    writes, the API's default, as telemetry ingest counts them)."""
    split = usage.get("cache_creation") or {}
    if split:
        write_5m = int(split.get("ephemeral_5m_input_tokens") or 0)
        write_1h = int(split.get("ephemeral_1h_input_tokens") or 0)
    else:
        write_5m, write_1h = int(usage.get("cache_creation_input_tokens") or 0), 0
    return TokenCounts(
        input=int(usage.get("input_tokens") or 0),
        output=int(usage.get("output_tokens") or 0),
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
        cache_read=int(usage.get("cache_read_input_tokens") or 0),
    )


@dataclass(frozen=True, slots=True)
class TokenTotals:
    """Token counts summed over `calls` calls."""

    calls: int
    tokens: TokenCounts = field(default_factory=TokenCounts)

    @classmethod
    def of(cls, counts: Iterable[TokenCounts]) -> TokenTotals:
        calls, sums = 0, dict.fromkeys(TOKEN_TYPES, 0)
        for count in counts:
            calls += 1
            for name in TOKEN_TYPES:
                sums[name] += getattr(count, name)
        return cls(calls, TokenCounts(**sums))

    def per_call(self, value: int) -> float | None:
        return value / self.calls if self.calls else None

    @property
    def prompt_per_call(self) -> float | None:
        return self.per_call(self.tokens.prompt)

    @property
    def output_per_call(self) -> float | None:
        return self.per_call(self.tokens.output)

    @property
    def cache_hit_ratio(self) -> float | None:
        """Cache-read tokens over all prompt tokens (as the run summary defines it)."""
        return self.tokens.cache_read / self.tokens.prompt if self.tokens.prompt else None

    @property
    def output_ratio(self) -> float | None:
        """Output tokens per prompt token."""
        return self.tokens.output / self.tokens.prompt if self.tokens.prompt else None


def cost_pico(tokens: TokenCounts, rates: Rates) -> int | None:
    """The exact cost in pico-USD; None when a token type with tokens has no price."""
    total = 0
    for name in TOKEN_TYPES:
        count = getattr(tokens, name)
        if count:
            rate = rates.get(name)
            if rate is None:
                return None
            total += count * rate
    return total


def without_cache_hits(tokens: TokenCounts) -> TokenCounts:
    return replace(tokens, input=tokens.input + tokens.cache_read, cache_read=0)


def per_thousand_micro_usd(total_pico: int | None, calls: int) -> int | None:
    """Cost per 1,000 calls in micro-USD, rounded half up; None without calls or a price."""
    if total_pico is None or calls == 0:
        return None
    numerator, denominator = total_pico * CALLS_PER_QUOTE, calls * PICO_PER_MICRO
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True, slots=True)
class Projection:
    """An eval run's measured tokens priced per 1,000 calls, with and without cache hits."""

    per_1000_micro_usd: int | None
    per_1000_no_cache_micro_usd: int | None


def project(measured: TokenTotals, rates: Rates) -> Projection:
    return Projection(
        per_thousand_micro_usd(cost_pico(measured.tokens, rates), measured.calls),
        per_thousand_micro_usd(cost_pico(without_cache_hits(measured.tokens), rates), measured.calls),
    )


def output_factor(candidate: TokenTotals, serving: TokenTotals) -> float | None:
    """The candidate's output/input ratio over the serving version's, on the same eval cases."""
    mine, theirs = candidate.output_ratio, serving.output_ratio
    if mine is None or not theirs:
        return None
    return mine / theirs


def scale_output(tokens: TokenCounts, factor: float) -> TokenCounts:
    return replace(tokens, output=int(tokens.output * factor + 0.5))


@dataclass(frozen=True, slots=True)
class Counterfactual:
    """What the candidate would have cost on the logged calls, and why it differs from the eval's
    projection, in sentences a product owner reads."""

    calls: int
    output_factor: float
    cost_micro_usd: int | None
    per_1000_micro_usd: int | None
    explanation: tuple[str, ...]


def counterfactual(
    *,
    logged: TokenTotals,
    logged_cost_micro_usd: int,
    logged_standard_pico: int | None,
    rates: Rates,
    factor: float,
    measured: TokenTotals,
    projection: Projection,
) -> Counterfactual:
    """Re-price the logged token counts (output scaled by `factor`) at the candidate's `rates`.

    `logged_standard_pico` is the same logged tokens at their own models' standard prices: the
    gap to what they were billed shows the share of batch calls (billed at half price).
    """
    scaled = scale_output(logged.tokens, factor)
    total = cost_pico(scaled, rates)
    cost = None if total is None else (total + PICO_PER_MICRO // 2) // PICO_PER_MICRO
    per_1000 = per_thousand_micro_usd(total, logged.calls)
    explanation = _explain(
        logged=logged,
        scaled=TokenTotals(logged.calls, scaled),
        factor=factor,
        measured=measured,
        logged_cost_micro_usd=logged_cost_micro_usd,
        logged_standard_pico=logged_standard_pico,
        projected=projection.per_1000_micro_usd,
        counterfactual_per_1000=per_1000,
    )
    return Counterfactual(logged.calls, factor, cost, per_1000, explanation)


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %"


def _explain(
    *,
    logged: TokenTotals,
    scaled: TokenTotals,
    factor: float,
    measured: TokenTotals,
    logged_cost_micro_usd: int,
    logged_standard_pico: int | None,
    projected: int | None,
    counterfactual_per_1000: int | None,
) -> tuple[str, ...]:
    sentences = []
    if projected and counterfactual_per_1000 is not None:
        ratio = counterfactual_per_1000 / projected
        if ratio >= 2:
            how_much = f"{ratio:.1f} times as much per call as"
        else:
            how_much = f"{_pct(abs(ratio - 1))} {'more' if ratio > 1 else 'less'} per call than"
        sentences.append(f"On the logged calls it would cost {how_much} the eval projects.")
    sentences.append(
        f"Prompt size: the logged calls average {logged.prompt_per_call or 0:,.0f} prompt tokens, "
        f"the eval cases {measured.prompt_per_call or 0:,.0f}."
    )
    logged_hits, eval_hits = logged.cache_hit_ratio or 0.0, measured.cache_hit_ratio or 0.0
    sentences.append(
        f"Cache-hit ratio: {_pct(logged_hits)} of the logged prompt tokens were cache reads "
        f"(a tenth of the input price or less), {_pct(eval_hits)} in the eval run."
    )
    sentences.append(
        f"Output length: this candidate writes {factor:.2f} times the serving version's output per prompt "
        f"token, so the logged calls would have averaged {scaled.output_per_call or 0:,.0f} output "
        f"tokens (they averaged {logged.output_per_call or 0:,.0f}); the eval cases averaged "
        f"{measured.output_per_call or 0:,.0f}."
    )
    if logged_standard_pico:
        standard = logged_standard_pico / PICO_PER_MICRO
        gap = 1 - logged_cost_micro_usd / standard
        if gap > 0.005:
            # Batch rows are half the standard input and output price, so a spend whose share s
            # ran through batches is billed (1 - s/2) of standard: s = 2 * gap.
            sentences.append(
                f"Batch share: the logged calls were billed {_pct(gap)} below their tokens at "
                f"standard prices, the mark of about {_pct(min(1.0, 2 * gap))} of the spend running "
                "through the Message Batches API (half price); both figures here are at standard "
                "prices."
            )
        else:
            sentences.append("Batch share: the logged calls were billed at standard prices (no batch calls).")
    return tuple(sentences)
