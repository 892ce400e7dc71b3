"""The tool rule of paired replay (rollouts/shadow.py): what the candidate may keep."""

from __future__ import annotations

from rollouts.shadow import shadow_config

CUSTOM = {"name": "lookup_order", "input_schema": {"type": "object"}}
SEARCH = {"type": "web_search_20260318", "name": "web_search"}
TOOLSET = {"type": "mcp_toolset", "mcp_server_name": "crm"}
SERVER = {"type": "url", "name": "crm", "url": "https://crm.example/mcp"}


def test_shadow_config__custom_tools__kept_as_definitions() -> None:
    content = {"model": "m", "max_tokens": 10, "tools": [CUSTOM], "tool_choice": {"type": "auto"}}

    shadow = shadow_config(content)

    assert shadow.content == content
    assert shadow.dropped_tools == ()


def test_shadow_config__server_tools_and_mcp__dropped_and_named() -> None:
    content = {"model": "m", "max_tokens": 10, "tools": [CUSTOM, SEARCH, TOOLSET], "mcp_servers": [SERVER]}

    shadow = shadow_config(content)

    assert shadow.content["tools"] == [CUSTOM]
    assert "mcp_servers" not in shadow.content
    assert (shadow.dropped_tools, shadow.dropped_mcp_servers) == (("web_search", "crm"), ("crm",))


def test_shadow_config__tool_choice_names_a_dropped_tool__choice_dropped() -> None:
    content = {
        "model": "m",
        "max_tokens": 10,
        "tools": [CUSTOM, SEARCH],
        "tool_choice": {"type": "tool", "name": "web_search"},
    }

    assert "tool_choice" not in shadow_config(content).content


def test_shadow_config__any_tool_but_none_left__choice_and_tools_dropped() -> None:
    content = {"model": "m", "max_tokens": 10, "tools": [SEARCH], "tool_choice": {"type": "any"}}

    shadow = shadow_config(content).content

    assert ("tools" in shadow, "tool_choice" in shadow) == (False, False)


def test_shadow_config__original__left_unchanged() -> None:
    content = {"model": "m", "max_tokens": 10, "tools": [CUSTOM, SEARCH], "mcp_servers": [SERVER]}

    shadow_config(content)

    assert content["tools"] == [CUSTOM, SEARCH]
    assert content["mcp_servers"] == [SERVER]
