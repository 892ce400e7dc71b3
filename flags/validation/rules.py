"""Validation of config content: the JSON Schema first, then rules needing the catalog or the whole config."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any, TypeGuard

from flags.validation.catalog import ModelInfo, is_unpinned_alias, unpinned_alias_message
from flags.validation.issues import (
    Issue,
    ValidationResult,
    format_path,
    join_path,
    looks_like_api_key,
    nesting_issue,
    show,
)
from flags.validation.judge import verdict_tool
from flags.validation.schema import CONFIG_SCHEMA, is_whole_number, json_schema_issues, schema_issues
from flagstaff.api_keys import api_key_paths
from flagstaff.nesting import too_deep

SURFACES = frozenset({"chat", "typing_assist", "agent", "batch", "judge"})
DEFAULT_API_VERSION = "2026-10-21"
LEGACY_API_VERSION = "2023-06-01"
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
MAX_CACHE_BREAKPOINTS = 4
# Values the schema does not know already have a schema error; model rules only judge known ones.
_EFFORT_LEVELS = frozenset(CONFIG_SCHEMA["properties"]["output_config"]["properties"]["effort"]["enum"])
_THINKING_TYPES = frozenset(CONFIG_SCHEMA["properties"]["thinking"]["properties"]["type"]["enum"])
_THINKING_ON = frozenset({"enabled", "adaptive"})
_THINKING_OFF = frozenset({"disabled", "between_tools"})
_FORCED_TOOL_CHOICES = frozenset({"any", "tool"})
_TOP_P_WITH_THINKING = (0.95, 1.0)
# Suggestions within this similarity of the best one are offered too.
_SUGGESTION_SPREAD = 0.05
# RFC 7493 (I-JSON) section 2.2: integers beyond +-(2**53 - 1) are not read exactly by every
# JSON parser; no count the Messages API takes comes near it.
MAX_SAFE_INTEGER = 2**53 - 1
_API_KEY_MESSAGE = (
    "This looks like an Anthropic API key. Keys must never be stored in a config: "
    "store the key as a secret and reference the secret by name."
)


def validate_config(
    content: object, *, catalog: Mapping[str, ModelInfo], surface: str, today: date, max_depth: int
) -> ValidationResult:
    """Validate config content for a flag of `surface`; `catalog` maps model ids and aliases to models.

    Content nested more than `max_depth` levels gets that one error: the schema checks recurse.
    """
    if surface not in SURFACES:
        raise ValueError(f"Unknown surface {surface!r}; expected one of {sorted(SURFACES)}.")
    deep = too_deep(content, max_depth)
    if deep is not None:
        return ValidationResult(errors=[nesting_issue(deep, max_depth)])
    checker = _Checker(catalog=catalog, today=today)
    leaves = list(_leaves(content))
    checker.errors.extend(_api_key_issues(content))
    checker.errors.extend(_null_character_issues(leaves))
    checker.errors.extend(_unsafe_integer_issues(leaves))
    if isinstance(content, dict):
        checker.check(content, prefix="", surface=surface)
    return ValidationResult(errors=schema_issues(content) + checker.errors, warnings=checker.warnings)


# A key or scalar of the document: its path, the value, and whether it is a key.
_Leaf = tuple[list[str | int], object, bool]


def _leaves(document: object) -> Iterator[_Leaf]:
    """Every key and scalar value with its path, document order, without recursion."""
    stack: list[tuple[list[str | int], object]] = [([], document)]
    while stack:
        segments, value = stack.pop()
        if isinstance(value, dict):
            children: list[tuple[list[str | int], object]] = []
            for key, item in value.items():
                yield segments, str(key), True
                children.append(([*segments, str(key)], item))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([([*segments, index], item) for index, item in enumerate(value)]))
        else:
            yield segments, value, False


def _api_key_issues(content: object) -> Iterator[Issue]:
    for segments in api_key_paths(content):
        yield Issue(format_path(segments), _API_KEY_MESSAGE, "api_key_in_config")


def _null_character_issues(leaves: list[_Leaf]) -> Iterator[Issue]:
    """PostgreSQL cannot store U+0000 in jsonb, so a config holding one could never be saved."""
    message = "Text must not contain the null character (U+0000)."
    for segments, value, is_key in leaves:
        if isinstance(value, str) and "\x00" in value:
            yield Issue(format_path([*segments, value] if is_key else segments), message, "null_character")


def _unsafe_integer_issues(leaves: list[_Leaf]) -> Iterator[Issue]:
    for segments, value, _is_key in leaves:
        if is_whole_number(value) and abs(value) > MAX_SAFE_INTEGER:
            yield Issue(
                format_path(segments),
                f"Out of range: whole numbers must be within ±{MAX_SAFE_INTEGER:,}.",
                "out_of_range",
            )


class _Checker:
    """Collects the errors and warnings of one config and its subagents."""

    def __init__(self, *, catalog: Mapping[str, ModelInfo], today: date) -> None:
        self.catalog = catalog
        self.today = today
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []

    def error(self, path: str, message: str, code: str) -> None:
        self.errors.append(Issue(path, message, code))

    def warning(self, path: str, message: str, code: str) -> None:
        self.warnings.append(Issue(path, message, code))

    def check(self, config: dict[str, Any], *, prefix: str, surface: str | None) -> None:
        model = self.check_model(config, prefix)
        self.check_sampling(config, prefix, model)
        if model is not None:
            self.check_model_limits(config, prefix, model)
        self.check_thinking_budget(config, prefix)
        self.check_tools(config, prefix)
        self.check_caching(config, prefix)
        self.check_subagents(config, prefix)
        if surface == "agent" and "max_iterations" not in config:
            self.error(
                join_path(prefix, "max_iterations"),
                "Agent flags need max_iterations (1 to 1000) to bound the agent loop.",
                "max_iterations_required",
            )
        if surface == "judge":
            self.errors.extend(verdict_tool(config, prefix)[1])

    def check_model(self, config: dict[str, Any], prefix: str) -> ModelInfo | None:
        """Check the model's lifecycle; return it when its capabilities apply."""
        model_id = config.get("model")
        if not isinstance(model_id, str) or not model_id or looks_like_api_key(model_id):
            return None
        path = join_path(prefix, "model")
        model = self.catalog.get(model_id)
        if model is None:
            close = _closest(model_id, self.catalog)
            hint = f" Did you mean {_either(close)}?" if close else ""
            self.error(path, f"Model {show(model_id)} is not in the catalog.{hint}", "unknown_model")
            return None
        switch = f" Switch to '{model.replacement}'." if model.replacement else ""
        if model.lifecycle == "retired":
            when = f" on {model.retires_at.isoformat()}" if model.retires_at else ""
            message = f"Model '{model_id}' was retired{when}; requests to it fail.{switch}"
            self.error(path, message, "model_retired")
            return None
        if model.lifecycle == "deprecated":
            message = f"Model '{model_id}' is deprecated{self._retirement(model)}.{switch}"
            self.warning(path, message, "model_deprecated")
        if is_unpinned_alias(model_id, model):
            self.warning(path, unpinned_alias_message(model_id, model), "model_alias_not_pinned")
        return model

    def _retirement(self, model: ModelInfo) -> str:
        if model.retires_at is None:
            return "; no retirement date is announced yet"
        day = model.retires_at.isoformat()
        days_left = (model.retires_at - self.today).days
        if days_left < 0:
            return f" and was due to retire on {day} ({-days_left} days ago); it can stop working at any time"
        if days_left == 0:
            return f" and retires today ({day})"
        return f" and retires on {day} ({days_left} day{'s' if days_left > 1 else ''} left)"

    def check_sampling(self, config: dict[str, Any], prefix: str, model: ModelInfo | None) -> None:
        version = config.get("anthropic_version", DEFAULT_API_VERSION)
        present = [name for name in SAMPLING_PARAMS if name in config]
        if version == DEFAULT_API_VERSION:
            for name in present:
                self.error(
                    join_path(prefix, name),
                    f"'{name}' was removed in API version 2026-10-21; the API rejects it at any value. "
                    f"Remove it, or pin anthropic_version to 2023-06-01 on a model that accepts it.",
                    "sampling_param_removed",
                )
            return
        if version != LEGACY_API_VERSION or model is None or not present:
            return
        if not model.accepts_sampling_params:
            for name in present:
                self.error(
                    join_path(prefix, name),
                    f"{model.display_name} rejects '{name}' (the API returns 400 for sampling parameters "
                    f"on this model). Remove it.",
                    "sampling_param_unsupported",
                )
            return
        if not model.accepts_temperature_with_top_p and "temperature" in config and "top_p" in config:
            self.error(
                join_path(prefix, "top_p"),
                f"{model.display_name} rejects 'temperature' and 'top_p' together; keep only one.",
                "sampling_params_conflict",
            )
        if _thinking_type(config) in _THINKING_ON:
            self._check_sampling_with_thinking(config, prefix)

    def _check_sampling_with_thinking(self, config: dict[str, Any], prefix: str) -> None:
        for name in ("temperature", "top_k"):
            if name in config:
                self.error(
                    join_path(prefix, name),
                    f"'{name}' cannot be combined with thinking; remove it or turn thinking off.",
                    "sampling_with_thinking",
                )
        top_p = config.get("top_p")
        low, high = _TOP_P_WITH_THINKING
        if _is_number(top_p) and not low <= top_p <= high:
            self.error(
                join_path(prefix, "top_p"),
                f"With thinking on, 'top_p' must be between {low} and {high:g}.",
                "sampling_with_thinking",
            )

    def check_model_limits(self, config: dict[str, Any], prefix: str, model: ModelInfo) -> None:
        name = model.display_name
        max_tokens = config.get("max_tokens")
        if is_whole_number(max_tokens) and model.max_tokens is not None and max_tokens > model.max_tokens:
            self.error(
                join_path(prefix, "max_tokens"),
                f"max_tokens is {max_tokens:,}, above the output limit of {name} ({model.max_tokens:,}).",
                "max_tokens_over_limit",
            )
        effort = _get(config, "output_config", "effort")
        effort_path = join_path(prefix, "output_config.effort")
        if effort in _EFFORT_LEVELS and effort not in model.effort_levels:
            self.error(
                effort_path,
                f"{name} does not support effort '{effort}'; {_use_one_of(model.effort_levels)}.",
                "effort_unsupported",
            )
        thinking = _thinking_type(config)
        requiring = model.efforts_requiring_thinking
        if thinking in _THINKING_TYPES and thinking not in model.thinking_types:
            self.error(
                join_path(prefix, "thinking.type"),
                f"{name} does not accept thinking type '{thinking}'; {_use_one_of(model.thinking_types)}.",
                "thinking_unsupported",
            )
        elif thinking in _THINKING_OFF and effort in requiring:
            allowed = [level for level in model.effort_levels if level not in requiring]
            fix = f"use {_either(allowed)}, or turn thinking on" if allowed else "turn thinking on"
            self.error(
                effort_path,
                f"{name} accepts effort '{effort}' only with thinking on; with thinking '{thinking}' {fix}.",
                "effort_needs_thinking",
            )
        choice = _get(config, "tool_choice", "type")
        if choice in _FORCED_TOOL_CHOICES and not model.supports_forced_tool_use:
            self.error(
                join_path(prefix, "tool_choice.type"),
                f"{name} does not support forced tool use (tool_choice '{choice}'); use 'auto'.",
                "forced_tool_use_unsupported",
            )

    def check_thinking_budget(self, config: dict[str, Any], prefix: str) -> None:
        budget, max_tokens = _get(config, "thinking", "budget_tokens"), config.get("max_tokens")
        if _thinking_type(config) != "enabled" or not (
            is_whole_number(budget) and is_whole_number(max_tokens)
        ):
            return
        if budget >= max_tokens:
            self.error(
                join_path(prefix, "thinking.budget_tokens"),
                f"budget_tokens ({budget:,}) must be less than max_tokens ({max_tokens:,}).",
                "budget_not_below_max_tokens",
            )

    def check_mcp_servers(self, config: dict[str, Any], prefix: str) -> dict[str, int]:
        """Check that server names are unique; return the index of each name's first server."""
        declared: dict[str, int] = {}
        for index, name in _named(config.get("mcp_servers")):
            if name in declared:
                self.error(
                    f"{join_path(prefix, 'mcp_servers')}[{index}].name",
                    f"MCP server name {show(name)} is already used by mcp_servers[{declared[name]}].",
                    "duplicate_mcp_server",
                )
            else:
                declared[name] = index
        return declared

    def check_tools(self, config: dict[str, Any], prefix: str) -> None:
        tools_path, servers_path = join_path(prefix, "tools"), join_path(prefix, "mcp_servers")
        declared = self.check_mcp_servers(config, prefix)
        tool_names: dict[str, int] = {}
        toolsets: dict[str, int] = {}
        for index, tool in enumerate(_list(config.get("tools"))):
            if not isinstance(tool, dict):
                continue
            path = f"{tools_path}[{index}]"
            if tool.get("type") == "mcp_toolset":
                self._check_toolset(tool, path, declared, toolsets, index)
                continue
            tool_name = tool.get("name")
            if isinstance(tool_name, str) and tool_name in tool_names:
                message = f"Tool name {show(tool_name)} is already used by tools[{tool_names[tool_name]}]."
                self.error(f"{path}.name", message, "duplicate_tool_name")
            elif isinstance(tool_name, str):
                tool_names[tool_name] = index
            input_schema = tool.get("input_schema")
            # A schema not of type 'object' already has its error; the metaschema would repeat it.
            is_object_schema = isinstance(input_schema, dict) and input_schema.get("type") == "object"
            if tool.get("type", "custom") == "custom" and is_object_schema:
                self.errors.extend(json_schema_issues(input_schema, path=f"{path}.input_schema"))
        for name, index in declared.items():
            if name not in toolsets:
                self.error(
                    f"{servers_path}[{index}].name",
                    f"MCP server {show(name)} is not used by any mcp_toolset in tools; "
                    f"the API needs exactly one per server.",
                    "unused_mcp_server",
                )
        self._check_tool_choice(config, prefix, tool_names, has_mcp_tools=bool(toolsets))

    def _check_toolset(
        self,
        tool: dict[str, Any],
        path: str,
        declared: Mapping[str, int],
        toolsets: dict[str, int],
        index: int,
    ) -> None:
        server = tool.get("mcp_server_name")
        if not isinstance(server, str) or not server:
            return
        if server not in declared:
            self.error(
                f"{path}.mcp_server_name",
                f"This MCP toolset uses server {show(server)}, which is not declared in mcp_servers.",
                "unknown_mcp_server",
            )
        elif server in toolsets:
            self.error(
                f"{path}.mcp_server_name",
                f"MCP server {show(server)} already has a toolset (tools[{toolsets[server]}]); "
                f"each server takes exactly one.",
                "duplicate_mcp_toolset",
            )
        else:
            toolsets[server] = index

    def _check_tool_choice(
        self, config: dict[str, Any], prefix: str, tool_names: Mapping[str, int], *, has_mcp_tools: bool
    ) -> None:
        name = _get(config, "tool_choice", "name")
        if _get(config, "tool_choice", "type") != "tool" or not isinstance(name, str) or name in tool_names:
            return
        path = join_path(prefix, "tool_choice.name")
        if has_mcp_tools:
            self.warning(
                path,
                f"tool_choice names {show(name)}, which is not defined in tools; it can only be a tool of an "
                f"MCP server, which cannot be checked here.",
                "tool_choice_unverified",
            )
        else:
            self.error(
                path, f"tool_choice names {show(name)}, but no tool has that name.", "unknown_tool_choice"
            )

    def check_caching(self, config: dict[str, Any], prefix: str) -> None:
        # In the order the API builds the prompt prefix: tools, then system, then the automatic breakpoint.
        # The top-level breakpoint is counted because whether it takes a slot is undocumented.
        breakpoints = [
            f"{join_path(prefix, field)}[{index}].cache_control"
            for field in ("tools", "system")
            for index, item in enumerate(_list(config.get(field)))
            if isinstance(item, dict) and "cache_control" in item
        ]
        if "cache_control" in config:
            breakpoints.append(join_path(prefix, "cache_control"))
        if len(breakpoints) > MAX_CACHE_BREAKPOINTS:
            self.error(
                breakpoints[MAX_CACHE_BREAKPOINTS],
                f"Too many cache breakpoints: {len(breakpoints)}, the API allows {MAX_CACHE_BREAKPOINTS} "
                f"(system blocks, tools and the top-level cache_control all count). "
                f"Remove this one and any after it.",
                "too_many_cache_breakpoints",
            )
        elif not breakpoints:
            self.warning(
                prefix,
                "No prompt caching: add cache_control to the system prompt, a tool or the top level "
                "to cut the cost and latency of repeated prompts.",
                "no_cache_breakpoint",
            )

    def check_subagents(self, config: dict[str, Any], prefix: str) -> None:
        subagents_path = join_path(prefix, "subagents")
        seen: dict[str, int] = {}
        for index, name in _named(config.get("subagents")):
            if name in seen:
                self.error(
                    f"{subagents_path}[{index}].name",
                    f"Subagent name {show(name)} is already used by subagents[{seen[name]}].",
                    "duplicate_subagent_name",
                )
            else:
                seen[name] = index
        for index, subagent in enumerate(_list(config.get("subagents"))):
            nested = subagent.get("config") if isinstance(subagent, dict) else None
            if isinstance(nested, dict):
                self.check(nested, prefix=f"{subagents_path}[{index}].config", surface=None)


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _named(value: object) -> list[tuple[int, str]]:
    """(index, name) of the list items that are objects with a text name."""
    return [
        (index, item["name"])
        for index, item in enumerate(_list(value))
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]


def _get(config: dict[str, Any], field: str, key: str) -> object:
    container = config.get(field)
    return container.get(key) if isinstance(container, dict) else None


def _thinking_type(config: dict[str, Any]) -> str | None:
    kind = _get(config, "thinking", "type")
    return kind if isinstance(kind, str) else None


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _closest(word: str, candidates: Mapping[str, object]) -> list[str]:
    scored = sorted(
        ((difflib.SequenceMatcher(None, word, candidate).ratio(), candidate) for candidate in candidates),
        reverse=True,
    )
    best = scored[0][0] if scored else 0.0
    return [candidate for score, candidate in scored[:3] if score >= max(0.6, best - _SUGGESTION_SPREAD)]


def _use_one_of(choices: Sequence[str]) -> str:
    return f"use one of: {', '.join(choices)}" if choices else "remove it"


def _either(choices: Sequence[str]) -> str:
    quoted = [f"'{choice}'" for choice in choices]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
