"""Structured diff between two config contents (docs/config-content.md)."""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

_MINUS = "\N{MINUS SIGN}"

# Fields diffed as collections or as text; every other field is diffed as a parameter.
_STRUCTURED_FIELDS = frozenset({"system", "tools", "mcp_servers", "subagents"})


@dataclass(frozen=True)
class FieldChange:
    """A value at a dotted path that differs; `None` stands for an absent value."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class DiffLine:
    """One row of a side-by-side line diff; line numbers are 1-based."""

    op: Literal["equal", "insert", "delete"]
    old_no: int | None
    new_no: int | None
    text: str


@dataclass(frozen=True)
class ItemChange:
    name: str
    changes: list[FieldChange]


@dataclass(frozen=True)
class CollectionDiff:
    """Named items added, removed or changed, and whether the common items were reordered."""

    added: list[str]
    removed: list[str]
    changed: list[ItemChange]
    reordered: bool = False

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.reordered)


@dataclass(frozen=True)
class ConfigDiff:
    changes: list[FieldChange]
    system: list[DiffLine]
    tools: CollectionDiff
    mcp_servers: CollectionDiff
    subagents: CollectionDiff
    kinds: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Return the diff as JSON-serialisable data, with its summary."""
        return {**dataclasses.asdict(self), "summary": self.summary()}

    def summary(self) -> str:
        """Describe the diff in one line."""
        if self.kinds == ["no_change"]:
            return "No change"
        parts = []
        model = next((change for change in self.changes if change.path == "model"), None)
        if model is not None:
            parts.append(f"model swap {model.old} → {model.new}")
        if "prompt_edit" in self.kinds:
            inserted = sum(line.op == "insert" for line in self.system)
            deleted = sum(line.op == "delete" for line in self.system)
            parts.append(f"prompt edit (+{inserted} {_MINUS}{deleted} lines)")
        if self.tools:
            parts.append(_describe_collection("tool set change", self.tools))
        if "mcp_change" in self.kinds:
            parts.append(_describe_collection("MCP change", self.mcp_servers))
        if self.subagents:
            parts.append(_describe_collection("subagent change", self.subagents))
        parameters = [change.path for change in self.changes if change.path != "model"]
        if parameters:
            parts.append(f"parameter change ({', '.join(parameters)})")
        if "cache_prefix_changed" in self.kinds:
            parts.append("cache prefix changed")
        text = "; ".join(parts)
        return text[0].upper() + text[1:]


def diff_configs(old: Mapping[str, Any], new: Mapping[str, Any]) -> ConfigDiff:
    """Diff two config contents: parameters, system prompt lines, tools, MCP servers, subagents."""
    # Changes hold values taken from the contents; copies keep them from aliasing the caller's.
    old, new = copy.deepcopy(old), copy.deepcopy(new)
    changes = [
        change
        for key in sorted((old.keys() | new.keys()) - _STRUCTURED_FIELDS)
        for change in _field_changes(old.get(key), new.get(key), key)
    ]
    changes += _system_cache_control_changes(old.get("system"), new.get("system"))
    system = _line_diff(system_text(old.get("system")), system_text(new.get("system")))
    tools = _collection_diff(old.get("tools"), new.get("tools"), _tool_key, _item_changes)
    mcp_servers = _collection_diff(old.get("mcp_servers"), new.get("mcp_servers"), _named, _item_changes)
    subagents = _collection_diff(old.get("subagents"), new.get("subagents"), _named, _subagent_changes)

    kinds: set[str] = set()
    if old.get("model") != new.get("model"):
        kinds.add("model_swap")
    if any(line.op != "equal" for line in system):
        kinds.add("prompt_edit")
    if tools:
        kinds.add("tool_set_change")
    if mcp_servers or _toolsets(old.get("tools")) != _toolsets(new.get("tools")):
        kinds.add("mcp_change")
    if subagents:
        kinds.add("subagent_change")
    if any(change.path != "model" for change in changes):
        kinds.add("parameter_change")
    if _cache_prefix_changed(old, new):
        kinds.add("cache_prefix_changed")
    return ConfigDiff(
        changes=changes,
        system=system,
        tools=tools,
        mcp_servers=mcp_servers,
        subagents=subagents,
        kinds=sorted(kinds) or ["no_change"],
    )


def _field_changes(old: Any, new: Any, path: str) -> list[FieldChange]:
    if old == new:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return [
            change
            for key in sorted(old.keys() | new.keys())
            for change in _field_changes(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        ]
    return [FieldChange(path, old, new)]


def _system_blocks(
    system: str | Sequence[Mapping[str, Any]] | None,
) -> list[Mapping[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"type": "text", "text": system}]
    return list(system)


def system_text(system: str | Sequence[Mapping[str, Any]] | None) -> str:
    """A config's system prompt as one text, its blocks joined by newlines."""
    return "\n".join(block["text"] for block in _system_blocks(system))


def _system_cache_control_changes(old: Any, new: Any) -> list[FieldChange]:
    # Blocks are paired by position: the line diff shows text, this shows breakpoints.
    old_blocks, new_blocks = _system_blocks(old), _system_blocks(new)
    changes = []
    for index in range(max(len(old_blocks), len(new_blocks))):
        old_cache = old_blocks[index].get("cache_control") if index < len(old_blocks) else None
        new_cache = new_blocks[index].get("cache_control") if index < len(new_blocks) else None
        if old_cache != new_cache:
            changes.append(FieldChange(f"system[{index}].cache_control", old_cache, new_cache))
    return changes


def _line_diff(old_text: str, new_text: str) -> list[DiffLine]:
    old_lines, new_lines = old_text.splitlines(), new_text.splitlines()
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    lines = []
    for op, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        if op == "equal":
            lines += [
                DiffLine(
                    "equal",
                    old_start + offset + 1,
                    new_start + offset + 1,
                    old_lines[old_start + offset],
                )
                for offset in range(old_end - old_start)
            ]
            continue
        # A replacement is shown as its deletions followed by its insertions.
        lines += [
            DiffLine("delete", number + 1, None, old_lines[number]) for number in range(old_start, old_end)
        ]
        lines += [
            DiffLine("insert", None, number + 1, new_lines[number]) for number in range(new_start, new_end)
        ]
    return lines


def _tool_key(tool: Mapping[str, Any]) -> str:
    if tool.get("type") == "mcp_toolset":
        return str(tool["mcp_server_name"])
    return str(tool["name"])


def _named(item: Mapping[str, Any]) -> str:
    return str(item["name"])


def _item_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    return _field_changes(old, new, "")


def _subagent_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    changes = _field_changes(
        {key: value for key, value in old.items() if key != "config"},
        {key: value for key, value in new.items() if key != "config"},
        "",
    )
    return changes + _nested_config_changes(old.get("config", {}), new.get("config", {}))


def _nested_config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """Express a nested config's diff as field changes with paths under `config.`."""
    diff = diff_configs(old, new)
    changes = [dataclasses.replace(change, path=f"config.{change.path}") for change in diff.changes]
    if "prompt_edit" in diff.kinds:
        changes.append(
            FieldChange(
                "config.system",
                system_text(old.get("system")),
                system_text(new.get("system")),
            )
        )
    for field, key in (
        ("tools", _tool_key),
        ("mcp_servers", _named),
        ("subagents", _named),
    ):
        changes += _collection_changes(
            f"config.{field}", getattr(diff, field), old.get(field), new.get(field), key
        )
    return changes


def _collection_changes(
    path: str,
    collection: CollectionDiff,
    old: Sequence[Mapping[str, Any]] | None,
    new: Sequence[Mapping[str, Any]] | None,
    key: Callable[[Mapping[str, Any]], str],
) -> list[FieldChange]:
    old_items = {key(item): item for item in old or []}
    new_items = {key(item): item for item in new or []}
    changes = [FieldChange(f"{path}[{name}]", None, new_items[name]) for name in collection.added]
    changes += [FieldChange(f"{path}[{name}]", old_items[name], None) for name in collection.removed]
    changes += [
        dataclasses.replace(change, path=f"{path}[{item.name}].{change.path}")
        for item in collection.changed
        for change in item.changes
    ]
    if collection.reordered:
        changes.append(FieldChange(path, list(old_items), list(new_items)))
    return changes


def _collection_diff(
    old: Sequence[Mapping[str, Any]] | None,
    new: Sequence[Mapping[str, Any]] | None,
    key: Callable[[Mapping[str, Any]], str],
    item_changes: Callable[[Mapping[str, Any], Mapping[str, Any]], list[FieldChange]],
) -> CollectionDiff:
    old_items = {key(item): item for item in old or []}
    new_items = {key(item): item for item in new or []}
    common = [name for name in old_items if name in new_items]
    changed = [
        ItemChange(name, changes)
        for name in common
        if (changes := item_changes(old_items[name], new_items[name]))
    ]
    return CollectionDiff(
        added=[name for name in new_items if name not in old_items],
        removed=[name for name in old_items if name not in new_items],
        changed=changed,
        reordered=common != [name for name in new_items if name in old_items],
    )


def _toolsets(tools: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    return [tool for tool in tools or [] if tool.get("type") == "mcp_toolset"]


def _describe_collection(label: str, collection: CollectionDiff) -> str:
    parts = [f"+{name}" for name in collection.added]
    parts += [f"{_MINUS}{name}" for name in collection.removed]
    parts += [f"~{item.name}" for item in collection.changed]
    if collection.reordered:
        parts.append("reordered")
    return f"{label} ({' '.join(parts)})" if parts else label


def _cache_prefix_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    # Each version caches its prefix up to its last breakpoint; the prefix changed when
    # either version's cached part is not the start of the other version's prefix.
    old_blocks, old_end = _cacheable_prefix(old)
    new_blocks, new_end = _cacheable_prefix(new)
    return old_blocks[:old_end] != new_blocks[:old_end] or old_blocks[:new_end] != new_blocks[:new_end]


def _cacheable_prefix(
    content: Mapping[str, Any],
) -> tuple[list[Mapping[str, Any]], int]:
    """Return the prefix blocks in cache order (tools, then system) and how many are cached."""
    servers = {server["name"]: server for server in content.get("mcp_servers") or []}
    blocks: list[Mapping[str, Any]] = []
    end = 0
    for tool in content.get("tools") or []:
        block = {key: value for key, value in tool.items() if key != "cache_control"}
        if tool.get("type") == "mcp_toolset":
            # The toolset's tool definitions, which sit in the prefix, come from its server.
            block["server"] = servers.get(tool["mcp_server_name"])
        blocks.append(block)
        end = len(blocks) if tool.get("cache_control") else end
    for system_block in _system_blocks(content.get("system")):
        blocks.append({key: value for key, value in system_block.items() if key != "cache_control"})
        end = len(blocks) if system_block.get("cache_control") else end
    # Automatic caching puts the breakpoint on the last cacheable block, past tools and system.
    return blocks, len(blocks) if content.get("cache_control") else end
