"""Cost per 1,000 calls from measured tokens, and the counterfactual on logged calls, against
figures computed by hand (1 USD per million tokens is 1,000,000 pico-USD per token)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from evals import cost_projection
from evals.cost_projection import TokenTotals
from telemetry.pricing import ModelPricing, Price, PriceTable, TokenCounts

# claude-haiku-5-5 standard rates: $0.10 input, $0.50 output, $0.125 5-minute write, $0.01 read.
HAIKU = {
    "input": 100_000,
    "output": 500_000,
    "cache_write_5m": 125_000,
    "cache_write_1h": 200_000,
    "cache_read": 10_000,
}
# claude-sonnet-5-5: $2 input, $10 output, $2.50 5-minute write, $4 1-hour write, $0.10 read.
SONNET = {
    "input": 2_000_000,
    "output": 10_000_000,
    "cache_write_5m": 2_500_000,
    "cache_write_1h": 4_000_000,
    "cache_read": 100_000,
}
# The candidate's eval run: 10 cases, 8,000 uncached + 2,000 cache-read prompt tokens, 1,500 out.
MEASURED = TokenTotals(10, TokenCounts(input=8_000, cache_read=2_000, output=1_500))
# The serving version's run on the same cases: 10,000 prompt tokens, 3,000 out (ratio 0.3).
SERVING = TokenTotals(10, TokenCounts(input=10_000, output=3_000))
# A week of logged calls: 1,000 calls of 5,000 prompt tokens (60 % cache reads), 400 out each.
LOGGED = TokenTotals(
    1_000, TokenCounts(input=1_000_000, cache_write_5m=1_000_000, cache_read=3_000_000, output=400_000)
)


def test_project__measured_tokens__priced_per_1000_calls_with_and_without_cache_hits():
    projection = cost_projection.project(MEASURED, HAIKU)

    # 8,000 x 0.1 + 2,000 x 0.01 + 1,500 x 0.5 = 1,570 µ$ for 10 calls -> 157,000 µ$ per 1,000.
    assert projection.per_1000_micro_usd == 157_000
    # Reads as uncached input: 10,000 x 0.1 + 1,500 x 0.5 = 1,750 µ$ -> 175,000 µ$ per 1,000.
    assert projection.per_1000_no_cache_micro_usd == 175_000


def test_project__model_without_a_price_for_a_token_type__unknown():
    projection = cost_projection.project(MEASURED, {**HAIKU, "cache_read": None})

    assert projection.per_1000_micro_usd is None
    assert projection.per_1000_no_cache_micro_usd == 175_000


def test_per_thousand_micro_usd__half_a_micro_dollar__rounds_up():
    assert cost_projection.per_thousand_micro_usd(1_500, 3) == 1  # 0.5 µ$ per 1,000 calls
    assert cost_projection.per_thousand_micro_usd(1_499, 3) == 0
    assert cost_projection.per_thousand_micro_usd(100, 0) is None


def test_output_factor__candidate_writes_half_as_much__one_half():
    assert cost_projection.output_factor(MEASURED, SERVING) == 0.5
    assert cost_projection.output_factor(MEASURED, TokenTotals(0)) is None


def test_counterfactual__logged_week__repriced_at_the_candidate_with_scaled_output():
    result = cost_projection.counterfactual(
        logged=LOGGED,
        logged_cost_micro_usd=6_600_000,
        logged_standard_pico=cost_projection.cost_pico(LOGGED.tokens, SONNET),
        rates=HAIKU,
        factor=0.5,
        measured=MEASURED,
        projection=cost_projection.project(MEASURED, HAIKU),
    )

    # 1,000,000 x 0.1 + 1,000,000 x 0.125 + 3,000,000 x 0.01 + (400,000 x 0.5 = 200,000) x 0.5
    # = 100,000 + 125,000 + 30,000 + 100,000 = 355,000 µ$ over 1,000 calls.
    assert result.cost_micro_usd == 355_000
    assert result.per_1000_micro_usd == 355_000
    text = " ".join(result.explanation)
    assert "2.3 times as much per call as the eval projects" in text  # 355,000 / 157,000
    assert "5,000 prompt tokens, the eval cases 1,000" in text
    assert "60 % of the logged prompt tokens were cache reads" in text
    assert "20 % in the eval run" in text
    assert "averaged 200 output tokens (they averaged 400)" in text
    # Sonnet standard: 2 + 2.5 + 0.3 + 4 = 8.8 $; billed 6.6 $ is 25 % below: about half in batches.
    assert "billed 25 % below" in text
    assert "about 50 % of the spend" in text


def test_counterfactual__billed_at_standard__says_no_batch_calls():
    standard = cost_projection.cost_pico(LOGGED.tokens, SONNET)
    assert standard == 8_800_000_000_000

    result = cost_projection.counterfactual(
        logged=LOGGED,
        logged_cost_micro_usd=8_800_000,
        logged_standard_pico=standard,
        rates=SONNET,
        factor=1.0,
        measured=SERVING,
        projection=cost_projection.project(SERVING, SONNET),
    )

    assert result.cost_micro_usd == 8_800_000
    assert "billed at standard prices (no batch calls)" in " ".join(result.explanation)


def test_usage_tokens__cache_write_without_ttl_split__counted_as_5_minute_writes():
    tokens = cost_projection.usage_tokens(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 7,
            "cache_read_input_tokens": 3,
        }
    )
    split = cost_projection.usage_tokens(
        {
            "input_tokens": 1,
            "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 4},
        }
    )

    assert tokens == TokenCounts(input=10, output=5, cache_write_5m=7, cache_read=3)
    assert split == TokenCounts(input=1, cache_write_5m=2, cache_write_1h=4)


def test_pico_per_token__dated_change_and_long_prompt__rates_of_that_day_and_context():
    table = PriceTable(
        [
            ModelPricing(
                "m",
                (
                    Price("cache_read", Decimal("0.2"), date(2023, 1, 1)),
                    Price("cache_read", Decimal("0.1"), date(2026, 10, 7)),
                    Price("input", Decimal("0.1"), date(2023, 1, 1)),
                    Price("input", Decimal("0.5"), date(2023, 1, 1), context="prompt_over_100k"),
                ),
            )
        ]
    )

    before = table.pico_per_token(model="m", on=date(2026, 10, 6))
    after = table.pico_per_token(model="m", on=date(2026, 10, 7))
    long = table.pico_per_token(model="m", on=date(2026, 10, 7), prompt_tokens=100_001)

    assert before is not None
    assert before["cache_read"] == 200_000
    assert before["input"] == 100_000
    assert after is not None
    assert after["cache_read"] == 100_000
    assert after["output"] is None
    assert long is not None
    assert long["input"] == 500_000
    assert long["cache_read"] is None
    assert table.pico_per_token(model="unknown", on=date(2026, 10, 7)) is None
