"""Models API: `ModelInfo` builders and GET /v1/models pagination."""

from demo.fake_anthropic.wire import JSON, ApiError, Query, int_param, one

MODEL_LINES = ("haiku", "sonnet", "opus", "fable", "mythos")
LIFECYCLES = ("active", "deprecated", "retired")


def model_info(
    model_id: str,
    *,
    lifecycle: str = "active",
    display_name: str | None = None,
    created_at: str = "2026-01-01T00:00:00Z",
    deprecated_at: str | None = None,
    retires_at: str | None = None,
    max_input_tokens: int = 1_000_000,
    max_tokens: int = 128_000,
    capabilities: JSON | None = None,
) -> JSON:
    """Build a `ModelInfo`; name and line derive from ids like `claude-opus-5-5`."""
    family, *version = model_id.removeprefix("claude-").split("-")
    numbers = ".".join(part for part in version if len(part) < 8)  # drop a date suffix
    return {
        "id": model_id,
        "type": "model",
        "display_name": display_name or f"Claude {family.title()} {numbers}".strip(),
        "created_at": created_at,
        "lifecycle": lifecycle,
        "deprecated_at": deprecated_at,
        "retires_at": retires_at,
        "line": family if family in MODEL_LINES else None,
        "max_input_tokens": max_input_tokens,
        "max_tokens": max_tokens,
        "capabilities": capabilities or default_capabilities(),
    }


def default_capabilities() -> JSON:
    yes, no = {"supported": True}, {"supported": False}
    return {
        "batch": yes,
        "citations": yes,
        "code_execution": yes,
        "context_management": {
            "supported": True,
            "clear_tool_uses_20250919": yes,
            "clear_thinking_20251015": yes,
            "compact_20260112": yes,
        },
        "effort": {"supported": True, **dict.fromkeys(("low", "medium", "high", "xhigh", "max"), yes)},
        "image_input": yes,
        "pdf_input": yes,
        "server_tools": {"supported": True, "web_search": yes, "code_execution": yes},
        "structured_outputs": yes,
        "thinking": {
            "supported": True,
            "types": {"enabled": no, "disabled": yes, "adaptive": yes, "between_tools": no},
        },
    }


def default_models() -> list[JSON]:
    """Newest first, as the API lists them; one deprecated and one retired model."""
    return [
        model_info("claude-opus-5-5", created_at="2026-10-21T00:00:00Z"),
        model_info("claude-sonnet-5-5", created_at="2026-10-21T00:00:00Z"),
        model_info("claude-haiku-5-5", created_at="2026-10-21T00:00:00Z"),
        model_info("claude-opus-5", created_at="2026-07-24T00:00:00Z"),
        model_info(
            "claude-haiku-4-5-20251001",
            created_at="2025-10-01T00:00:00Z",
            max_input_tokens=200_000,
            max_tokens=64_000,
        ),
        model_info(
            "claude-sonnet-4-5-20250929",
            lifecycle="deprecated",
            created_at="2025-09-29T00:00:00Z",
            deprecated_at="2026-09-01T00:00:00Z",
            retires_at="2026-11-30T00:00:00Z",
            max_tokens=64_000,
        ),
        model_info(
            "claude-opus-4-1-20250805",
            lifecycle="retired",
            created_at="2025-08-05T00:00:00Z",
            deprecated_at="2026-06-05T00:00:00Z",
            retires_at="2026-08-05T00:00:00Z",
            max_input_tokens=200_000,
            max_tokens=32_000,
        ),
    ]


def find_model(models: list[JSON], model_id: str) -> JSON:
    model = next((m for m in models if m["id"] == model_id), None)
    if model is None:
        raise ApiError(404, f"model: {model_id}")
    return model


def list_models(models: list[JSON], query: Query, *, page_size: int | None = None) -> JSON:
    lifecycles = query.get("lifecycle[]", ["active", "deprecated"])
    if unknown := set(lifecycles) - set(LIFECYCLES):
        raise ApiError(400, f"lifecycle: unknown stage(s) {sorted(unknown)}")
    limit = int_param(query, "limit", default=20, maximum=1000)
    if page_size is not None:
        limit = min(limit, page_size)
    listed = [m for m in models if m["lifecycle"] in lifecycles]
    ids = [m["id"] for m in listed]
    after_id, before_id = one(query, "after_id"), one(query, "before_id")
    for cursor in (after_id, before_id):
        if cursor is not None and cursor not in ids:
            raise ApiError(400, f"Invalid cursor: {cursor}")
    if before_id is not None:
        end = ids.index(before_id)
        start = max(0, end - limit)
        page, has_more = listed[start:end], start > 0
    else:
        start = 0 if after_id is None else ids.index(after_id) + 1
        page, has_more = listed[start : start + limit], start + limit < len(listed)
    return {
        "data": page,
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
