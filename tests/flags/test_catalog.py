import json
from datetime import date
from decimal import Decimal

import pytest

from flags.validation import SEED_PATH, ModelInfo, catalog_by_id, load_seed

SEED_DATE = date(2026, 11, 25)
STANDARD_TOKEN_TYPES = {"input", "output", "cache_write_5m", "cache_write_1h", "cache_read"}
MODELS = load_seed()
CATALOG = catalog_by_id(MODELS)
IN_USE = [model for model in MODELS if model.lifecycle != "retired"]

# Every id and alias named in section 4.1/4.2 of the reference, plus the ids behind "claude-1.x" and
# "claude-instant-1.x".
REFERENCE_IDS = {
    "claude-fable-5-2", "claude-mythos-5-2", "claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5",
    "claude-fable-5-1", "claude-mythos-5-1", "claude-opus-5", "claude-sonnet-5", "claude-fable-5",
    "claude-mythos-5", "claude-opus-4-8", "claude-opus-4-7", "claude-sonnet-4-6", "claude-opus-4-6",
    "claude-opus-4-5", "claude-opus-4-5-20251101", "claude-haiku-4-5", "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-mythos-preview", "claude-opus-4-1-20250805",
    "claude-opus-4-20250514", "claude-opus-4-0", "claude-sonnet-4-20250514", "claude-sonnet-4-0",
    "claude-3-haiku-20240307", "claude-3-7-sonnet-20250219", "claude-3-5-haiku-20241022",
    "claude-3-opus-20240229", "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022", "claude-2.0",
    "claude-2.1", "claude-3-sonnet-20240229", "claude-1.0", "claude-1.1", "claude-1.2", "claude-1.3",
    "claude-instant-1.0", "claude-instant-1.1", "claude-instant-1.2",
}  # fmt: skip
REFERENCE_REPLACEMENTS = {
    "claude-opus-4-1-20250805": "claude-opus-4-8",
    "claude-opus-4-20250514": "claude-opus-4-8",
    "claude-sonnet-4-20250514": "claude-sonnet-4-6",
    "claude-mythos-preview": "claude-mythos-5",
    "claude-sonnet-4-5-20250929": "claude-sonnet-5-5",
    "claude-haiku-4-5-20251001": "claude-haiku-5-5",
    "claude-opus-5": "claude-opus-5-5",
    "claude-sonnet-5": "claude-sonnet-5-5",
    "claude-fable-5": "claude-fable-5-1",
}


def prices_of(
    model_id: str, token_type: str, tier: str = "standard"
) -> list[tuple[Decimal, date, str | None]]:
    return [
        (price.usd_per_mtok, price.effective_from, price.context)
        for price in CATALOG[model_id].prices
        if price.token_type == token_type and price.tier == tier
    ]


def test_load_seed__default_file__has_every_reference_id():
    assert set(CATALOG) == REFERENCE_IDS


def test_load_seed__ids_and_aliases__are_unique():
    names = [name for model in MODELS for name in (model.id, *model.aliases)]

    assert len(names) == len(set(names))


def test_load_seed__every_model__has_known_lifecycle_and_line():
    assert {model.lifecycle for model in MODELS} == {"active", "deprecated", "retired"}
    assert {model.line for model in MODELS} <= {"haiku", "sonnet", "opus", "fable", "mythos", None}


@pytest.mark.parametrize("model", IN_USE, ids=lambda model: model.id)
def test_load_seed__model_in_use__has_standard_and_batch_prices(model: ModelInfo):
    standard = {price.token_type for price in model.prices if price.tier == "standard"}
    batch = {price.token_type for price in model.prices if price.tier == "batch"}

    assert standard == STANDARD_TOKEN_TYPES
    assert batch == {"input", "output"}


def test_load_seed__every_price__has_an_effective_date_and_a_positive_amount():
    prices = [price for model in MODELS for price in model.prices]

    assert prices
    assert all(isinstance(price.effective_from, date) and price.usd_per_mtok > 0 for price in prices)


def test_load_seed__batch_prices__are_half_the_standard_ones():
    for model in MODELS:
        standard = {
            (p.token_type, p.context, p.effective_from): p.usd_per_mtok
            for p in model.prices
            if p.tier == "standard"
        }
        for price in (p for p in model.prices if p.tier == "batch"):
            key = (price.token_type, price.context, price.effective_from)
            assert price.usd_per_mtok * 2 == standard[key], model.id


def test_load_seed__sonnet_5_5_cache_read__drops_on_2026_10_07():
    assert sorted(prices_of("claude-sonnet-5-5", "cache_read"), key=lambda row: row[1]) == [
        (Decimal("0.2"), date(2023, 1, 1), None),
        (Decimal("0.1"), date(2026, 10, 7), None),
    ]


def test_load_seed__haiku_5_5__prices_prompts_over_100k_separately():
    assert prices_of("claude-haiku-5-5", "input") == [
        (Decimal("0.1"), date(2023, 1, 1), None),
        (Decimal("0.5"), date(2023, 1, 1), "prompt_over_100k"),
    ]


@pytest.mark.parametrize(("model_id", "replacement"), REFERENCE_REPLACEMENTS.items())
def test_load_seed__model_with_reference_replacement__names_it(model_id: str, replacement: str):
    assert CATALOG[model_id].replacement == replacement


def test_load_seed__replacements__are_catalog_models_in_use():
    replacements = {model.replacement for model in MODELS if model.replacement}

    assert all(CATALOG[replacement].lifecycle == "active" for replacement in replacements)


def test_load_seed__retired_models__retired_before_the_seed_date():
    retired = [model for model in MODELS if model.lifecycle == "retired"]

    assert all(model.retires_at is not None and model.retires_at <= SEED_DATE for model in retired)


def test_load_seed__deprecated_models__have_scheduled_retirements():
    deprecated = {model.id: model.retires_at for model in MODELS if model.lifecycle == "deprecated"}

    assert deprecated == {
        "claude-opus-4-5-20251101": date(2027, 1, 22),
        "claude-sonnet-4-5-20250929": date(2026, 11, 30),
    }


def test_load_seed__active_models__have_no_retirement_date():
    assert [model.id for model in MODELS if model.lifecycle == "active" and model.retires_at] == []


@pytest.mark.parametrize("model", IN_USE, ids=lambda model: model.id)
def test_load_seed__model_in_use__has_limits_and_thinking_types(model: ModelInfo):
    assert model.max_tokens is not None
    assert model.context_window is not None
    assert model.max_tokens < model.context_window
    assert model.thinking_types
    assert set(model.efforts_requiring_thinking) <= set(model.effort_levels)


def test_load_seed__opus_5__needs_thinking_for_xhigh_and_max():
    assert CATALOG["claude-opus-5"].efforts_requiring_thinking == ("xhigh", "max")


def test_load_seed__given_path__reads_that_file(tmp_path):
    document = json.loads(SEED_PATH.read_text())
    document["models"] = [entry for entry in document["models"] if entry["id"] == "claude-opus-5-5"]
    path = tmp_path / "models.json"
    path.write_text(json.dumps(document))

    assert [model.id for model in load_seed(path)] == ["claude-opus-5-5"]


def test_catalog_by_id__alias__maps_to_its_snapshot():
    assert CATALOG["claude-sonnet-4-5"] is CATALOG["claude-sonnet-4-5-20250929"]
