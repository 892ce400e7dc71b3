"""Config content and a catalog for the validation tests: the seed plus small hand-made models."""

from datetime import date
from typing import Any

from flags.validation import ModelInfo, ValidationResult, catalog_by_id, load_seed, validate_config

TODAY = date(2026, 11, 25)
MAX_DEPTH = 64
DROP = object()
USER_KEY = "sk-ant-api03-" + "Ab3_x-9" * 12
ADMIN_KEY = "sk-ant-admin01-" + "Zq8-Kk1" * 12

SAMPLING_MODEL = ModelInfo(
    id="test-sampling",
    display_name="Test Sampling",
    max_tokens=64_000,
    effort_levels=("low", "medium", "high"),
    thinking_types=("enabled", "adaptive", "disabled"),
)


def deprecated_model(model_id: str, retires_at: date | None) -> ModelInfo:
    return ModelInfo(
        id=model_id,
        display_name=model_id,
        lifecycle="deprecated",
        retires_at=retires_at,
        replacement="claude-sonnet-5-5",
        max_tokens=8_192,
    )


CATALOG = catalog_by_id(
    [
        *load_seed(),
        SAMPLING_MODEL,
        deprecated_model("test-retires-soon", date(2026, 12, 5)),
        deprecated_model("test-retires-today", TODAY),
        deprecated_model("test-overdue", date(2026, 11, 20)),
        deprecated_model("test-no-date", None),
    ]
)


def make(**overrides: Any) -> dict[str, Any]:
    """A valid chat config (claude-haiku-5-5, cached); DROP removes a field."""
    config: dict[str, Any] = {
        "model": "claude-haiku-5-5",
        "max_tokens": 1024,
        "cache_control": {"type": "ephemeral"},
    }
    config.update(overrides)
    return {key: value for key, value in config.items() if value is not DROP}


def tool(name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        **overrides,
    }


def server(name: str, **overrides: Any) -> dict[str, Any]:
    return {"type": "url", "name": name, "url": f"https://{name}.example.com/mcp", **overrides}


def toolset(server_name: str) -> dict[str, Any]:
    return {"type": "mcp_toolset", "mcp_server_name": server_name}


def cached_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}


def validate(content: object, surface: str = "chat") -> ValidationResult:
    return validate_config(content, catalog=CATALOG, surface=surface, today=TODAY, max_depth=MAX_DEPTH)
