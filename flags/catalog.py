"""The model catalog in the database: seeding, Models API sync, and the view validation reads."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from flags.models import ClaudeModel
from flags.models import ModelPrice as PriceRow
from flags.validation import ModelInfo, ModelPrice, catalog_by_id, load_seed

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import ModelInfo as ApiModelInfo

logger = logging.getLogger(__name__)

EFFORT_ORDER = ("low", "medium", "high", "xhigh", "max")
THINKING_ORDER = ("enabled", "disabled", "adaptive", "between_tools")
# Facts the Models API does not report; they stay as the seed (or an operator) set them.
LOCAL_CAPABILITIES = (
    "efforts_requiring_thinking",
    "accepts_sampling_params",
    "accepts_temperature_with_top_p",
    "supports_forced_tool_use",
    "supports_inference_geo",
)


def _capabilities(info: ModelInfo) -> dict[str, Any]:
    return {
        "effort_levels": list(info.effort_levels),
        "thinking_types": list(info.thinking_types),
        "efforts_requiring_thinking": list(info.efforts_requiring_thinking),
        "accepts_sampling_params": info.accepts_sampling_params,
        "accepts_temperature_with_top_p": info.accepts_temperature_with_top_p,
        "supports_forced_tool_use": info.supports_forced_tool_use,
        "supports_inference_geo": info.supports_inference_geo,
    }


def model_info(row: ClaudeModel) -> ModelInfo:
    caps = row.capabilities
    return ModelInfo(
        id=row.model_id,
        display_name=row.display_name,
        line=row.line or None,
        lifecycle=row.lifecycle,  # type: ignore[arg-type]
        deprecated_at=row.deprecated_at,
        retires_at=row.retires_at,
        replacement=row.replacement or None,
        max_tokens=row.max_tokens,
        context_window=row.context_window,
        effort_levels=tuple(caps.get("effort_levels", ())),
        thinking_types=tuple(caps.get("thinking_types", ())),
        efforts_requiring_thinking=tuple(caps.get("efforts_requiring_thinking", ())),
        accepts_sampling_params=caps.get("accepts_sampling_params", True),
        accepts_temperature_with_top_p=caps.get("accepts_temperature_with_top_p", True),
        supports_forced_tool_use=caps.get("supports_forced_tool_use", True),
        supports_inference_geo=caps.get("supports_inference_geo", False),
        aliases=tuple(row.aliases),
        prices=tuple(
            ModelPrice(
                token_type=price.token_type,  # type: ignore[arg-type]
                usd_per_mtok=price.usd_per_mtok,
                effective_from=price.effective_from,
                tier=price.tier,  # type: ignore[arg-type]
                context=price.context or None,
            )
            for price in row.prices.all()
        ),
    )


def current_catalog() -> dict[str, ModelInfo]:
    """Every model id and alias in the database, mapped to its facts."""
    return catalog_by_id(model_info(row) for row in ClaudeModel.objects.with_prices())


def models_in(content: object, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path, model id) of the config's own model and of every subagent's, depth first."""
    if not isinstance(content, dict):
        return
    model = content.get("model")
    if isinstance(model, str):
        yield (f"{prefix}.model" if prefix else "model"), model
    subagents = content.get("subagents")
    for index, subagent in enumerate(subagents if isinstance(subagents, list) else []):
        if isinstance(subagent, dict):
            base = f"{prefix}.subagents[{index}].config" if prefix else f"subagents[{index}].config"
            yield from models_in(subagent.get("config"), base)


def _row_fields(info: ModelInfo) -> dict[str, Any]:
    return {
        "display_name": info.display_name,
        "line": info.line or "",
        "lifecycle": info.lifecycle,
        "deprecated_at": info.deprecated_at,
        "retires_at": info.retires_at,
        "max_tokens": info.max_tokens,
        "context_window": info.context_window,
    }


def _insert_prices(row: ClaudeModel, prices: Iterable[ModelPrice]) -> int:
    existing = set(row.prices.values_list("token_type", "tier", "context", "effective_from"))
    new_rows = [
        PriceRow(
            model=row,
            token_type=price.token_type,
            tier=price.tier,
            context=price.context or "",
            usd_per_mtok=price.usd_per_mtok,
            effective_from=price.effective_from,
        )
        for price in prices
        if (price.token_type, price.tier, price.context or "", price.effective_from) not in existing
    ]
    PriceRow.objects.bulk_create(new_rows)
    return len(new_rows)


@transaction.atomic
def store_models(models: Sequence[ModelInfo], *, source: str) -> dict[str, list[str]]:
    """Upsert models; returns the ids added, changed (lifecycle, dates, limits) and repriced.

    From the seed, an existing row is left alone except for missing prices, so a newer Models
    API reading is never overwritten by older seed facts. From the Models API, the API's fields
    win and the facts it does not report (prices, replacement, local capabilities) are kept.
    """
    added: list[str] = []
    changed: list[str] = []
    repriced: list[str] = []
    rows = {row.model_id: row for row in ClaudeModel.objects.filter(model_id__in=[m.id for m in models])}
    now = timezone.now()
    for info in models:
        row = rows.get(info.id)
        if row is None:
            row = ClaudeModel.objects.create(
                model_id=info.id,
                replacement=info.replacement or "",
                aliases=list(info.aliases),
                capabilities=_capabilities(info),
                source=source,
                synced_at=now,
                **_row_fields(info),
            )
            added.append(info.id)
        elif source != "seed":
            fields = _row_fields(info)
            capabilities = {
                **_capabilities(info),
                **{key: row.capabilities[key] for key in LOCAL_CAPABILITIES if key in row.capabilities},
            }
            before = {**{name: getattr(row, name) for name in fields}, "capabilities": row.capabilities}
            after = {**fields, "capabilities": capabilities}
            if before != after:
                changed.append(info.id)
            for name, value in after.items():
                setattr(row, name, value)
            row.source, row.synced_at = source, now
            row.save()
        if info.prices and _insert_prices(row, info.prices):
            repriced.append(info.id)
    return {"added": added, "changed": changed, "repriced": repriced}


def seed_catalog() -> dict[str, list[str]]:
    """Load flags/data/models.json; idempotent, and safe to run after every migrate."""
    return store_models(load_seed(), source="seed")


def _as_date(value: datetime | None) -> date | None:
    return value.date() if value else None


def _supported(capability: Any, names: Sequence[str]) -> tuple[str, ...]:
    if capability is None:
        return ()
    found = []
    for name in names:
        entry = getattr(capability, name, None)
        if entry is None and getattr(capability, "types", None) is not None:
            entry = getattr(capability.types, name, None)
        if entry is not None and getattr(entry, "supported", False):
            found.append(name)
    return tuple(found)


def from_models_api(item: ApiModelInfo) -> ModelInfo:
    capabilities = item.capabilities
    return ModelInfo(
        id=item.id,
        display_name=item.display_name,
        line=item.line,
        lifecycle=item.lifecycle,
        deprecated_at=_as_date(item.deprecated_at),
        retires_at=_as_date(item.retires_at),
        max_tokens=item.max_tokens,
        context_window=item.max_input_tokens,
        effort_levels=_supported(capabilities.effort if capabilities else None, EFFORT_ORDER),
        thinking_types=_supported(capabilities.thinking if capabilities else None, THINKING_ORDER),
    )


def fetch_models(client: anthropic.Anthropic) -> list[ModelInfo]:
    """Every model the Models API knows, retired ones included (the SDK follows the pages)."""
    page = client.models.list(lifecycle=["active", "deprecated", "retired"], limit=1000)
    return [from_models_api(item) for item in page]
