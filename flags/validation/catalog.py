"""Model catalog facts as plain data, and the seed file they start from."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

SEED_PATH = Path(__file__).resolve().parent.parent / "data" / "models.json"

Lifecycle = Literal["active", "deprecated", "retired"]
TokenType = Literal["input", "output", "cache_write_5m", "cache_write_1h", "cache_read"]
PriceTier = Literal["standard", "batch"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens of one token type, from `effective_from` on.

    `context` narrows the row to some requests, e.g. "prompt_over_100k"; None applies to all others.
    """

    token_type: TokenType
    usd_per_mtok: Decimal
    effective_from: date
    tier: PriceTier = "standard"
    context: str | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model of the catalog: the Models API's fields plus what the API does not report.

    `context_window` is the Models API's `max_input_tokens`; `max_tokens` is the output limit.
    `efforts_requiring_thinking` lists effort levels the model rejects while thinking is off.
    `accepts_sampling_params` is about API version 2023-06-01; 2026-10-21 rejects them everywhere.
    """

    id: str
    display_name: str
    line: str | None = None
    lifecycle: Lifecycle = "active"
    deprecated_at: date | None = None
    retires_at: date | None = None
    replacement: str | None = None
    max_tokens: int | None = None
    context_window: int | None = None
    effort_levels: tuple[str, ...] = ()
    thinking_types: tuple[str, ...] = ()
    efforts_requiring_thinking: tuple[str, ...] = ()
    accepts_sampling_params: bool = True
    accepts_temperature_with_top_p: bool = True
    supports_forced_tool_use: bool = True
    supports_inference_geo: bool = False
    aliases: tuple[str, ...] = ()
    prices: tuple[ModelPrice, ...] = ()


def is_unpinned_alias(model_id: str, model: ModelInfo) -> bool:
    """Whether `model_id` is an alias of `model` rather than its dated id.

    Only models before Opus 4.6 have aliases: later ones have one fixed, dateless id (the
    reference on the Anthropic API, section 4.1), so an alias in the catalog always names a
    pre-4.6 model whose alias could move to a newer snapshot.
    """
    return model_id != model.id and model_id in model.aliases


def unpinned_alias_message(model_id: str, model: ModelInfo) -> str:
    return (
        f"'{model_id}' is an alias of '{model.id}': pin the dated id in production, so the "
        "model cannot change under the version when the alias moves to a newer snapshot."
    )


def load_seed(path: Path | None = None) -> list[ModelInfo]:
    """Read the catalog seed file (flags/data/models.json unless another path is given)."""
    document = json.loads((path or SEED_PATH).read_text(encoding="utf-8"))
    return [_model(entry) for entry in document["models"]]


def catalog_by_id(models: Iterable[ModelInfo]) -> dict[str, ModelInfo]:
    """Map every model id and alias to its model, the shape `validate_config` takes."""
    catalog: dict[str, ModelInfo] = {}
    for model in models:
        for model_id in (model.id, *model.aliases):
            catalog[model_id] = model
    return catalog


def _model(entry: dict[str, Any]) -> ModelInfo:
    capabilities = entry["capabilities"]
    return ModelInfo(
        id=entry["id"],
        display_name=entry["display_name"],
        line=entry["line"],
        lifecycle=entry["lifecycle"],
        deprecated_at=_date(entry["deprecated_at"]),
        retires_at=_date(entry["retires_at"]),
        replacement=entry["replacement"],
        max_tokens=entry["max_tokens"],
        context_window=entry["context_window"],
        effort_levels=tuple(capabilities["effort_levels"]),
        thinking_types=tuple(capabilities["thinking_types"]),
        efforts_requiring_thinking=tuple(capabilities["efforts_requiring_thinking"]),
        accepts_sampling_params=capabilities["accepts_sampling_params"],
        accepts_temperature_with_top_p=capabilities["accepts_temperature_with_top_p"],
        supports_forced_tool_use=capabilities["supports_forced_tool_use"],
        supports_inference_geo=capabilities["supports_inference_geo"],
        aliases=tuple(entry["aliases"]),
        prices=tuple(_price(row) for row in entry["prices"]),
    )


def _price(row: dict[str, Any]) -> ModelPrice:
    return ModelPrice(
        token_type=row["token_type"],
        usd_per_mtok=Decimal(row["usd_per_mtok"]),
        effective_from=date.fromisoformat(row["effective_from"]),
        tier=row["tier"],
        context=row.get("context"),
    )


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None
