"""The migration draft: a config moved off a deprecated or retiring model, with a reason per change.

Pure Python, no Django: given a config's content and the catalog (ids and aliases mapped to
`ModelInfo`, as `flags.catalog.current_catalog` returns it), `draft_migration` returns the new
content and the list of changes, each at the dotted path `flags.diff.diff_configs` reports it
under (`model`, `output_config.effort`, `subagents[researcher].config.temperature`), so that
the stored version's diff is exactly the listed changes. Facts: shared/reference/anthropic-api.md
§4.1 (aliases and date-pinned ids), §4.3 (sampling parameters), §4.4 (thinking and effort).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from flags.validation import ModelInfo
from flags.validation.rules import LEGACY_API_VERSION, SAMPLING_PARAMS

EFFORT_ORDER = ("low", "medium", "high", "xhigh", "max")
# Which thinking type stands in for one the replacement rejects, best first: a fixed budget
# becomes the model's own budget, and the reverse keeps thinking on.
THINKING_FALLBACKS: dict[str, tuple[str, ...]] = {
    "enabled": ("adaptive", "disabled"),
    "adaptive": ("enabled", "disabled"),
    "disabled": ("between_tools", "adaptive"),
    "between_tools": ("disabled", "adaptive"),
}
FORCED_TOOL_CHOICES = ("any", "tool")
THINKING_ON = ("enabled", "adaptive")


@dataclass(frozen=True, slots=True)
class Change:
    """One adjusted value: where (as the version diff names it), before, after (None: removed), why."""

    path: str
    before: Any
    after: Any
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        after = "removed" if self.after is None else _show(self.after)
        before = "unset" if self.before is None else _show(self.before)
        return f"- {self.path}: {before} → {after}. {self.reason}"


@dataclass(frozen=True, slots=True)
class Draft:
    from_model: ModelInfo
    to_model: ModelInfo
    content: dict[str, Any]
    changes: list[Change]

    def message(self, *, today: date) -> str:
        """The version message: what moves where, and every change with its reason."""
        head = f"Migration {self.from_model.id} → {self.to_model.id}"
        runway = runway_days(self.from_model, today=today)
        if runway is not None and self.from_model.retires_at is not None:
            head += f" (retires {self.from_model.retires_at.isoformat()}, {runway} days left)"
        return "\n".join([head + ":", *(change.line() for change in self.changes)])


class NoReplacement(Exception):
    """The catalog names no replacement for the model, or names one it does not hold."""


def _show(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def is_exposed(model: ModelInfo) -> bool:
    """Deprecated, retired, or with a retirement date announced: a model to migrate off."""
    return model.lifecycle != "active" or model.retires_at is not None


def runway_days(model: ModelInfo, *, today: date) -> int | None:
    """Days from `today` to the model's retirement (negative once past); None without a date."""
    return (model.retires_at - today).days if model.retires_at is not None else None


def exposed_model(content: Mapping[str, Any], catalog: Mapping[str, ModelInfo]) -> ModelInfo | None:
    """The first exposed model a config uses, its own before its subagents'."""
    for config in _configs(content):
        model = catalog.get(str(config.get("model", "")))
        if model is not None and is_exposed(model):
            return model
    return None


def _configs(content: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [content]
    for subagent in content.get("subagents") or []:
        nested = subagent.get("config") if isinstance(subagent, Mapping) else None
        if isinstance(nested, Mapping):
            found += _configs(nested)
    return found


def replacement_for(model: ModelInfo, catalog: Mapping[str, ModelInfo]) -> ModelInfo:
    if not model.replacement:
        raise NoReplacement(
            f"The catalog names no replacement for {model.id}; choose one and draft the version by hand."
        )
    replacement = catalog.get(model.replacement)
    if replacement is None:
        raise NoReplacement(
            f"The catalog names {model.replacement} as the replacement for {model.id}, "
            "but has no such model; sync the catalog or draft the version by hand."
        )
    if replacement.lifecycle == "retired":
        raise NoReplacement(
            f"The catalog's replacement for {model.id}, {replacement.id}, is retired itself; "
            "draft the version by hand."
        )
    return replacement


def draft_migration(
    content: Mapping[str, Any], *, model: ModelInfo, catalog: Mapping[str, ModelInfo]
) -> Draft:
    """Move every config (the flag's and its subagents') on `model` to the catalog's replacement."""
    replacement = replacement_for(model, catalog)
    new = copy.deepcopy(dict(content))
    changes: list[Change] = []
    _migrate(new, "", model=model, replacement=replacement, catalog=catalog, changes=changes)
    return Draft(from_model=model, to_model=replacement, content=new, changes=changes)


class _Editor:
    """Edits one config in place and records each change at its diff path."""

    def __init__(self, config: dict[str, Any], prefix: str, changes: list[Change]) -> None:
        self.config, self.prefix, self.changes = config, prefix, changes

    def path(self, *keys: str) -> str:
        return f"{self.prefix}{'.'.join(keys)}"

    def set(self, key: str, value: Any, reason: str) -> None:
        self.changes.append(Change(self.path(key), self.config.get(key), value, reason))
        self.config[key] = value

    def remove(self, key: str, reason: str) -> None:
        self.changes.append(Change(self.path(key), self.config.pop(key), None, reason))

    def set_nested(self, field: str, key: str, value: Any, reason: str) -> None:
        container = self.config[field]
        self.changes.append(Change(self.path(field, key), container.get(key), value, reason))
        container[key] = value

    def remove_nested(self, field: str, key: str, reason: str) -> None:
        container = self.config[field]
        if len(container) == 1:
            # The diff reports an object that disappears as one change of the whole object.
            self.changes.append(Change(self.path(field), self.config.pop(field), None, reason))
        else:
            self.changes.append(Change(self.path(field, key), container.pop(key), None, reason))


def _migrate(
    config: dict[str, Any],
    prefix: str,
    *,
    model: ModelInfo,
    replacement: ModelInfo,
    catalog: Mapping[str, ModelInfo],
    changes: list[Change],
) -> None:
    edit = _Editor(config, prefix, changes)
    current = catalog.get(str(config.get("model", "")))
    if current is not None and current.id == model.id:
        _move_model(edit, model, replacement)
    elif current is not None and config["model"] != current.id:
        edit.set(
            "model",
            current.id,
            f"'{config['model']}' is an alias; pre-4.6 models are pinned to their dated id so the "
            "model cannot change under the flag.",
        )
    for index, subagent in enumerate(config.get("subagents") or []):
        nested = subagent.get("config") if isinstance(subagent, dict) else None
        if isinstance(nested, dict):
            name = subagent.get("name", index)
            _migrate(
                nested,
                f"{prefix}subagents[{name}].config.",
                model=model,
                replacement=replacement,
                catalog=catalog,
                changes=changes,
            )


def _move_model(edit: _Editor, model: ModelInfo, replacement: ModelInfo) -> None:
    when = (
        f" and retires on {model.retires_at.isoformat()}"
        if model.retires_at is not None and model.lifecycle != "retired"
        else ""
    )
    status = {"retired": "is retired", "deprecated": "is deprecated"}.get(model.lifecycle, "is legacy")
    pinned = " (its dated id: aliases of pre-4.6 models are not used)" if replacement.aliases else ""
    edit.set(
        "model",
        replacement.id,
        f"{model.id} {status}{when}; the catalog's replacement is {replacement.id}{pinned}.",
    )
    name = replacement.display_name
    _sampling(edit, replacement, name)
    _max_tokens(edit, replacement, name)
    _thinking(edit, replacement, name)
    _effort(edit, replacement, name)
    choice = edit.config.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in FORCED_TOOL_CHOICES
    if forced and not replacement.supports_forced_tool_use:
        why = f"{name} does not support forced tool use; the model chooses its tools."
        edit.set_nested("tool_choice", "type", "auto", why)
        if "name" in edit.config["tool_choice"]:
            edit.remove_nested("tool_choice", "name", "'auto' names no tool.")


def _sampling(edit: _Editor, replacement: ModelInfo, name: str) -> None:
    config = edit.config
    present = [param for param in SAMPLING_PARAMS if param in config]
    if not present:
        return
    if config.get("anthropic_version") != LEGACY_API_VERSION or not replacement.accepts_sampling_params:
        for param in present:
            edit.remove(param, f"{name} rejects '{param}' (the API answers 400 at any value).")
        return
    if not replacement.accepts_temperature_with_top_p and "temperature" in config and "top_p" in config:
        edit.remove("top_p", f"{name} rejects 'temperature' and 'top_p' together; 'temperature' is kept.")


def _max_tokens(edit: _Editor, replacement: ModelInfo, name: str) -> None:
    limit = replacement.max_tokens
    value = edit.config.get("max_tokens")
    if limit is not None and isinstance(value, int) and value > limit:
        edit.set("max_tokens", limit, f"capped at the output limit of {name} ({limit:,} tokens).")


def _thinking(edit: _Editor, replacement: ModelInfo, name: str) -> None:
    thinking = edit.config.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") in replacement.thinking_types:
        _budget_below_max_tokens(edit)
        return
    kind = str(thinking.get("type"))
    if not replacement.thinking_types:
        edit.remove("thinking", f"{name} takes no thinking setting.")
        return
    fallbacks = THINKING_FALLBACKS.get(kind, ())
    to = next((t for t in fallbacks if t in replacement.thinking_types), replacement.thinking_types[0])
    edit.set_nested("thinking", "type", to, f"{name} does not accept thinking '{kind}'; '{to}' is closest.")
    if to != "enabled" and "budget_tokens" in thinking:
        edit.remove_nested(
            "thinking", "budget_tokens", f"thinking '{to}' takes no budget; the model sizes its own."
        )
    elif to == "enabled" and "budget_tokens" not in thinking:
        budget = max(1024, int(edit.config.get("max_tokens", 2048)) // 2)
        edit.set_nested(
            "thinking", "budget_tokens", budget, "thinking 'enabled' needs a budget: half of max_tokens."
        )
    _budget_below_max_tokens(edit)


def _budget_below_max_tokens(edit: _Editor) -> None:
    thinking, max_tokens = edit.config.get("thinking"), edit.config.get("max_tokens")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled" or not isinstance(max_tokens, int):
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and budget >= max_tokens:
        edit.set_nested(
            "thinking", "budget_tokens", max_tokens // 2, "the budget must stay below the capped max_tokens."
        )


def _effort(edit: _Editor, replacement: ModelInfo, name: str) -> None:
    output_config = edit.config.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if not isinstance(effort, str):
        return
    thinking = edit.config.get("thinking")
    thinking_off = isinstance(thinking, dict) and thinking.get("type") not in THINKING_ON
    allowed = [
        level
        for level in replacement.effort_levels
        if not (thinking_off and level in replacement.efforts_requiring_thinking)
    ]
    if effort in allowed:
        return
    if not allowed:
        edit.remove_nested("output_config", "effort", f"{name} takes no effort setting.")
        return
    rank = EFFORT_ORDER.index(effort) if effort in EFFORT_ORDER else 0
    # The closest level at or below the old one keeps cost and latency from growing; else the lowest.
    below = [level for level in allowed if level in EFFORT_ORDER and EFFORT_ORDER.index(level) <= rank]
    to = below[-1] if below else allowed[0]
    why = " with thinking off" if effort in replacement.effort_levels else ""
    reason = f"{name} does not accept effort '{effort}'{why}; '{to}' is the closest it supports."
    edit.set_nested("output_config", "effort", to, reason)
