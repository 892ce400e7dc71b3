"""What a paired replay sends: the candidate's config with its tools restricted (pure).

A replay is never served and must change nothing outside, so (docs/analysis.md, "Paired replay"):
- MCP servers are not connected: `mcp_servers` and the `mcp_toolset` tools that use them go;
- server tools (a versioned `type`: web search, web fetch, code execution, ...) go: Anthropic
  would run them against the outside world, and at a cost;
- custom tools stay as definitions, so the candidate decides as it would when served whether
  to call one; the replay is one turn and no tool is ever run, so a `tool_use` answer is scored
  as it stands, like the control's recorded answer, which is one turn too;
- a `tool_choice` that names a tool gone, or that asks for a tool when none is left, goes (the
  API's default, auto).
No config marks a tool read-only, so none is ever executed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ShadowConfig:
    content: dict[str, Any]
    dropped_tools: tuple[str, ...]  # names of the tools taken away, for the replay's record
    dropped_mcp_servers: tuple[str, ...]


def _is_custom(tool: Mapping[str, Any]) -> bool:
    return tool.get("type", "custom") == "custom"


def shadow_config(content: Mapping[str, Any]) -> ShadowConfig:
    """`content` as a paired replay sends it (the module docstring gives the rule)."""
    restricted = copy.deepcopy(dict(content))
    tools = [tool for tool in restricted.get("tools") or [] if isinstance(tool, Mapping)]
    kept = [tool for tool in tools if _is_custom(tool)]
    dropped = tuple(
        str(tool.get("name") or tool.get("mcp_server_name") or tool.get("type"))
        for tool in tools
        if not _is_custom(tool)
    )
    servers = tuple(str(server.get("name")) for server in restricted.pop("mcp_servers", None) or [])
    if kept:
        restricted["tools"] = kept
    else:
        restricted.pop("tools", None)
    choice = restricted.get("tool_choice")
    if isinstance(choice, Mapping):
        names = {str(tool.get("name")) for tool in kept}
        if (choice.get("type") == "tool" and choice.get("name") not in names) or (
            choice.get("type") == "any" and not kept
        ):
            restricted.pop("tool_choice")
    return ShadowConfig(restricted, dropped, servers)
