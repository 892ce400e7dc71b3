from datetime import date
from decimal import Decimal

import pytest

from flags.validation import load_seed
from telemetry.pricing import ModelPricing, Price, PriceTable, TokenCounts

DAY = date(2026, 11, 25)
EPOCH = date(2023, 1, 1)


def prices(
    *rows: tuple[str, str], tier: str = "standard", context: str = "", since: date = EPOCH
) -> tuple[Price, ...]:
    return tuple(Price(token_type, Decimal(usd), since, tier, context) for token_type, usd in rows)


SONNET = ModelPricing(
    model_id="claude-sonnet-5-5",
    supports_inference_geo=True,
    aliases=("sonnet-latest",),
    prices=(
        *prices(("input", "2"), ("output", "10"), ("cache_write_5m", "2.5"), ("cache_write_1h", "4")),
        *prices(("cache_read", "0.2")),
        *prices(("cache_read", "0.1"), since=date(2026, 10, 7)),
        *prices(("input", "1"), ("output", "5"), tier="batch"),
    ),
)
HAIKU = ModelPricing(
    model_id="claude-haiku-5-5",
    supports_inference_geo=True,
    prices=(
        *prices(("input", "0.1"), ("output", "0.5"), ("cache_write_5m", "0.125"), ("cache_read", "0.01")),
        *prices(("input", "0.5"), ("output", "2.5"), ("cache_read", "0.05"), context="prompt_over_100k"),
    ),
)
NO_GEO = ModelPricing(model_id="claude-haiku-4-5", prices=prices(("input", "1"), ("output", "5")))
TABLE = PriceTable([SONNET, HAIKU, NO_GEO])


def cost(model: str = "claude-sonnet-5-5", on: date = DAY, **kwargs: object) -> int | None:
    counts = {key: kwargs.pop(key) for key in list(kwargs) if key in TokenCounts.__dataclass_fields__}
    return TABLE.cost_micro_usd(model=model, on=on, tokens=TokenCounts(**counts), **kwargs)  # type: ignore[arg-type]


def test_cost__input_and_output__priced_per_million_tokens():
    # $2/MTok x 1,000 + $10/MTok x 200 = $0.002 + $0.002
    assert cost(input=1000, output=200) == 4000


def test_cost__every_token_type__adds_its_own_price():
    # 100 x 2 + 10 x 10 + 40 x 2.5 + 50 x 4 + 1000 x 0.1 micro-USD
    assert cost(input=100, output=10, cache_write_5m=40, cache_write_1h=50, cache_read=1000) == 700


def test_cost__before_a_price_change__uses_the_price_then_in_force():
    assert cost(cache_read=1000, on=date(2026, 10, 6)) == 200


def test_cost__on_the_day_of_a_price_change__uses_the_new_price():
    assert cost(cache_read=1000, on=date(2026, 10, 7)) == 100


def test_cost__before_the_first_price__unknown():
    assert cost(input=1, on=date(2022, 12, 31)) is None


def test_cost__batch_tier__uses_batch_prices():
    assert cost(input=1000, output=1000, service_tier="batch") == 6000


def test_cost__batch_tier_without_a_batch_cache_price__falls_back_to_standard():
    assert cost(cache_read=1000, service_tier="batch") == 100


def test_cost__priority_tier__priced_as_standard():
    assert cost(input=1000, service_tier="priority") == cost(input=1000)


def test_cost__us_inference_geo__costs_ten_percent_more():
    assert cost(input=1000, output=200, inference_geo="us") == 4400


def test_cost__global_inference_geo__no_premium():
    assert cost(input=1000, inference_geo="global") == 2000


def test_cost__us_geo_on_a_model_without_geo_support__no_premium():
    assert cost("claude-haiku-4-5", input=1000, inference_geo="us") == 1000


def test_cost__prompt_over_100k__every_token_at_the_long_prompt_price():
    # 90,001 uncached + 10,000 cache reads = 100,001 prompt tokens
    assert cost("claude-haiku-5-5", input=90_001, cache_read=10_000, output=1000) == 48_001


def test_cost__prompt_of_exactly_100k__short_prompt_price():
    assert cost("claude-haiku-5-5", input=100_000) == 10_000


def test_cost__long_prompt_context_without_that_token_type__unknown():
    assert cost("claude-haiku-5-5", input=100_001, cache_write_5m=1) is None


def test_cost__token_type_without_price__unknown():
    assert cost("claude-haiku-4-5", input=10, cache_read=10) is None


def test_cost__token_type_without_price_but_no_tokens__known():
    assert cost("claude-haiku-4-5", input=10, cache_read=0) == 10


def test_cost__unknown_model__unknown():
    assert cost("claude-unknown", input=10) is None


def test_cost__alias__priced_as_its_model():
    assert cost("sonnet-latest", input=1000) == 2000


@pytest.mark.parametrize(("tokens", "expected"), [(1, 0), (3, 0), (249, 25), (251, 25)])
def test_cost__fractions_of_a_micro_usd__rounded_half_up(tokens, expected):
    # Haiku 5.5 input: $0.10/MTok = 0.1 micro-USD per token
    assert cost("claude-haiku-5-5", input=tokens) == expected


def test_cost__half_a_micro_usd__rounds_up():
    assert cost("claude-haiku-5-5", input=5) == 1


def test_cost__no_tokens__zero():
    assert cost(input=0) == 0


def test_cost__seed_catalog__prices_a_sonnet_call_as_the_reference_says():
    table = PriceTable(
        ModelPricing(
            m.id,
            tuple(
                Price(p.token_type, p.usd_per_mtok, p.effective_from, p.tier, p.context or "")
                for p in m.prices
            ),
            m.supports_inference_geo,
            m.aliases,
        )
        for m in load_seed()
    )

    result = table.cost_micro_usd(
        model="claude-sonnet-4-5", on=DAY, tokens=TokenCounts(input=1_000_000, output=1_000_000)
    )

    assert result == 18_000_000  # $3 + $15 per million on Sonnet 4.5 (via its alias)
