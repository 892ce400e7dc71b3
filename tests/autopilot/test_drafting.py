"""The draft's rules on plain catalog facts (no database)."""

from datetime import date
from typing import Any

import pytest

from autopilot.drafting import NoReplacement, draft_migration, exposed_model, runway_days
from flags.diff import diff_configs
from flags.validation import ModelInfo, catalog_by_id

OLD = ModelInfo(
    id="claude-old-4-5-20250101",
    display_name="Old 4.5",
    lifecycle="deprecated",
    retires_at=date(2027, 1, 31),
    replacement="claude-new-5",
    max_tokens=64000,
    effort_levels=("low", "medium", "high"),
    thinking_types=("enabled", "disabled"),
    aliases=("claude-old-4-5",),
)
NEW = ModelInfo(
    id="claude-new-5",
    display_name="New 5",
    max_tokens=32000,
    effort_levels=("low", "medium", "high", "xhigh", "max"),
    thinking_types=("adaptive", "disabled"),
    efforts_requiring_thinking=("xhigh", "max"),
    accepts_sampling_params=False,
    supports_forced_tool_use=False,
)
PINNED = ModelInfo(id="claude-small-4-5-20251001", display_name="Small", aliases=("claude-small-4-5",))
CATALOG = catalog_by_id([OLD, NEW, PINNED])


def paths(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    diff = diff_configs(old, new)
    found = {change.path for change in diff.changes}
    return found | {
        f"subagents[{item.name}].{c.path}" for item in diff.subagents.changed for c in item.changes
    }


def test_draft__alias_of_the_old_model__moved_with_every_change_listed_and_only_those() -> None:
    content = {
        "model": "claude-old-4-5",
        "anthropic_version": "2023-06-01",
        "max_tokens": 50000,
        "temperature": 0.2,
        "top_k": 40,
        "tool_choice": {"type": "tool", "name": "lookup"},
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
        "system": "Help.",
    }

    draft = draft_migration(content, model=OLD, catalog=CATALOG)

    assert draft.content["model"] == "claude-new-5"
    assert draft.content["max_tokens"] == 32000
    assert draft.content["tool_choice"] == {"type": "auto"}
    assert {c.path for c in draft.changes} == paths(content, draft.content)
    assert {c.path for c in draft.changes} == {
        "model",
        "max_tokens",
        "temperature",
        "top_k",
        "tool_choice.type",
        "tool_choice.name",
    }


def test_draft__effort_the_replacement_rejects_without_thinking__closest_level_below() -> None:
    old = ModelInfo(**{**_fields(OLD), "effort_levels": ("low", "medium", "high", "max")})
    content = {
        "model": old.id,
        "max_tokens": 1000,
        "thinking": {"type": "disabled"},
        "output_config": {"effort": "max"},
    }

    draft = draft_migration(content, model=old, catalog=catalog_by_id([old, NEW]))

    assert draft.content["output_config"] == {"effort": "high"}
    (change,) = [c for c in draft.changes if c.path == "output_config.effort"]
    assert "with thinking off" in change.reason


def test_draft__budget_thinking_where_only_adaptive__adaptive_without_budget() -> None:
    content = {"model": OLD.id, "max_tokens": 20000, "thinking": {"type": "enabled", "budget_tokens": 4000}}

    draft = draft_migration(content, model=OLD, catalog=CATALOG)

    assert draft.content["thinking"] == {"type": "adaptive"}
    assert {c.path for c in draft.changes} == {"model", "thinking.type", "thinking.budget_tokens"}
    assert {c.path for c in draft.changes} == paths(content, draft.content)


def test_draft__subagent_on_the_old_model_and_another_on_an_alias__both_moved_or_pinned() -> None:
    content = {
        "model": "claude-new-5",
        "max_tokens": 1000,
        "subagents": [
            {"name": "researcher", "description": "d", "config": {"model": OLD.id, "max_tokens": 60000}},
            {
                "name": "summary",
                "description": "d",
                "config": {"model": "claude-small-4-5", "max_tokens": 500},
            },
        ],
    }

    draft = draft_migration(content, model=OLD, catalog=CATALOG)

    assert {c.path for c in draft.changes} == {
        "subagents[researcher].config.model",
        "subagents[researcher].config.max_tokens",
        "subagents[summary].config.model",
    }
    assert {c.path for c in draft.changes} == paths(content, draft.content)
    assert draft.content["subagents"][1]["config"]["model"] == "claude-small-4-5-20251001"


def test_draft__replacement_not_in_catalog__refused_with_its_name() -> None:
    with pytest.raises(NoReplacement, match="claude-new-5"):
        draft_migration({"model": OLD.id, "max_tokens": 10}, model=OLD, catalog=catalog_by_id([OLD]))


def test_exposed_model_and_runway__deprecated_model__found_with_days_left() -> None:
    assert exposed_model({"model": "claude-old-4-5", "max_tokens": 1}, CATALOG) == OLD
    assert exposed_model({"model": "claude-new-5", "max_tokens": 1}, CATALOG) is None
    assert runway_days(OLD, today=date(2027, 1, 1)) == 30


def test_message__lists_every_change_with_its_reason() -> None:
    draft = draft_migration({"model": OLD.id, "max_tokens": 50000}, model=OLD, catalog=CATALOG)

    message = draft.message(today=date(2027, 1, 1))

    assert message.startswith(
        "Migration claude-old-4-5-20250101 → claude-new-5 (retires 2027-01-31, 30 days left):"
    )
    assert "- max_tokens: 50000 → 32000. capped at the output limit of New 5 (32,000 tokens)." in message


def _fields(model: ModelInfo) -> dict[str, Any]:
    return {name: getattr(model, name) for name in model.__slots__}
