"""Validation of tools, MCP servers, secrets, caching and subagents (the rest is in test_validation.py)."""

import pytest

from tests.flags.config_factories import (
    ADMIN_KEY,
    USER_KEY,
    cached_block,
    make,
    server,
    tool,
    toolset,
    validate,
)

TOOL_VALID = [
    pytest.param(
        make(
            tools=[
                tool("search", description="Search the docs.", strict=True),
                tool("lookup-order_2", type="custom"),
                {"type": "web_search_20260318", "name": "web_search", "max_uses": 3},
                {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
                {"type": "computer_toolset_20260801"},
            ]
        ),
        "chat",
        id="custom-and-server-tools",
    ),
    pytest.param(
        make(
            tools=[
                tool(
                    "create_ticket",
                    input_schema={
                        "type": "object",
                        "properties": {
                            "title": {"type": "string", "maxLength": 80},
                            "tags": {"type": "array"},
                        },
                        "required": ["title"],
                        "additionalProperties": False,
                    },
                )
            ]
        ),
        "chat",
        id="input-schema-valid",
    ),
    pytest.param(
        make(tools=[tool("search")], tool_choice={"type": "tool", "name": "search"}),
        "chat",
        id="tool-choice-known",
    ),
    pytest.param(
        make(
            mcp_servers=[server("docs", authorization_secret="DOCS_MCP_TOKEN"), server("crm")],
            tools=[toolset("docs"), toolset("crm")],
        ),
        "chat",
        id="mcp-servers-each-with-one-toolset",
    ),
    pytest.param(
        make(
            system=[cached_block("You are kind."), cached_block("Policies.")],
            tools=[tool("search", cache_control={"type": "ephemeral", "ttl": "1h"})],
        ),
        "chat",
        id="four-cache-breakpoints",
    ),
    pytest.param(make(system="Never share your sk-ant- keys."), "chat", id="key-prefix-alone-is-not-a-key"),
    pytest.param(
        make(
            subagents=[
                {"name": "researcher", "config": make(model="claude-sonnet-5-5")},
                {"name": "writer", "description": "Drafts replies.", "config": make()},
            ]
        ),
        "chat",
        id="subagents-unique",
    ),
    pytest.param(
        make(max_iterations=20, subagents=[{"name": "helper", "config": make()}]),
        "agent",
        id="agent-surface-not-required-of-subagents",
    ),
]

TOOL_ERRORS = [
    # Tools
    pytest.param(
        make(tools=[tool("search"), tool("search")]),
        "chat",
        "tools[1].name",
        "Tool name 'search' is already used by tools[0].",
        id="tool-names-duplicate",
    ),
    pytest.param(
        make(
            tools=[
                {"type": "web_search_20250305", "name": "web_search"},
                {"type": "web_search_20260318", "name": "web_search"},
            ]
        ),
        "chat",
        "tools[1].name",
        "already used by tools[0]",
        id="server-tool-twice",
    ),
    pytest.param(
        make(tools=[tool("look up")]),
        "chat",
        "tools[0].name",
        "Tool names may contain only letters, digits, '_' and '-', at most 128 characters.",
        id="tool-name-format",
    ),
    pytest.param(
        make(tools=[tool("a" * 129)]),
        "chat",
        "tools[0].name",
        "at most 128 characters",
        id="tool-name-too-long",
    ),
    pytest.param(
        make(tools=[tool("search", colour="red")]),
        "chat",
        "tools[0].colour",
        "Unknown field",
        id="tool-unknown-field",
    ),
    pytest.param(
        make(tools=[tool("a"), tool("b"), tool("c", input_schema={"type": "array"})]),
        "chat",
        "tools[2].input_schema.type",
        "A tool's input_schema must have type 'object'.",
        id="input-schema-not-object",
    ),
    pytest.param(
        make(tools=[tool("a", input_schema={"properties": {}})]),
        "chat",
        "tools[0].input_schema.type",
        "'type' is required.",
        id="input-schema-without-type",
    ),
    pytest.param(
        make(tools=[tool("a", input_schema={"type": "object", "properties": {"age": {"type": "integr"}}})]),
        "chat",
        "tools[0].input_schema.properties.age.type",
        "Not a valid JSON Schema: 'integr' is not a known value. Did you mean 'integer'?",
        id="input-schema-invalid-type",
    ),
    pytest.param(
        make(tools=[tool("a", input_schema={"type": "object", "required": "age"})]),
        "chat",
        "tools[0].input_schema.required",
        "Not a valid JSON Schema: Expected a list, got text.",
        id="input-schema-invalid-required",
    ),
    pytest.param(
        make(tools=[{"type": "web_search_2026", "name": "web_search"}]),
        "chat",
        "tools[0].type",
        "'web_search_2026' is not a known value. Did you mean 'web_search_20260318'?",
        id="server-tool-type-unknown",
    ),
    pytest.param(
        make(tools=[{"type": "web_fetch_20260318", "name": "fetch"}]),
        "chat",
        "tools[0].name",
        "Must be 'web_fetch', not 'fetch'.",
        id="server-tool-name-not-fixed",
    ),
    pytest.param(
        make(tools=[{"type": "text_editor_20250124", "name": "str_replace_based_edit_tool"}]),
        "chat",
        "tools[0].name",
        "Must be 'str_replace_editor'",
        id="text-editor-old-name",
    ),
    pytest.param(
        make(tools=[{"type": "bash_20250124"}]),
        "chat",
        "tools[0].name",
        "'name' is required.",
        id="server-tool-no-name",
    ),
    pytest.param(
        make(tools=[{"type": "browser_toolset_20260801", "name": "browser"}]),
        "chat",
        "tools[0].name",
        "Toolsets have no name; remove it.",
        id="toolset-with-name",
    ),
    pytest.param(
        make(tools=[tool("search")], tool_choice={"type": "tool", "name": "serch"}),
        "chat",
        "tool_choice.name",
        "tool_choice names 'serch', but no tool has that name.",
        id="tool-choice-unknown-tool",
    ),
    pytest.param(
        make(tool_choice={"type": "tool"}),
        "chat",
        "tool_choice.name",
        "'name' is required.",
        id="tool-choice-no-name",
    ),
    pytest.param(
        make(tool_choice={"type": "auto", "name": "search"}),
        "chat",
        "tool_choice.name",
        "A tool name is only allowed when the type is 'tool'.",
        id="tool-choice-name-without-tool-type",
    ),
    pytest.param(
        make(tools=[toolset("docs")]),
        "chat",
        "tools[0].mcp_server_name",
        "This MCP toolset uses server 'docs', which is not declared in mcp_servers.",
        id="toolset-server-undeclared",
    ),
    # MCP servers
    pytest.param(
        make(mcp_servers=[server("docs"), server("docs")], tools=[toolset("docs")]),
        "chat",
        "mcp_servers[1].name",
        "MCP server name 'docs' is already used by mcp_servers[0].",
        id="mcp-server-names-duplicate",
    ),
    pytest.param(
        make(mcp_servers=[server("docs", url="http://docs.example.com/mcp")], tools=[toolset("docs")]),
        "chat",
        "mcp_servers[0].url",
        "MCP server URLs must start with https://",
        id="mcp-server-not-https",
    ),
    pytest.param(
        make(mcp_servers=[server("docs", authorization_token="abc123")], tools=[toolset("docs")]),
        "chat",
        "mcp_servers[0].authorization_token",
        "Save the token as a secret and put its name in 'authorization_secret'.",
        id="mcp-server-inline-token",
    ),
    pytest.param(
        make(mcp_servers=[server("docs", authorization_secret="docs token")], tools=[toolset("docs")]),
        "chat",
        "mcp_servers[0].authorization_secret",
        "Secret names start with a letter",
        id="mcp-server-secret-name-format",
    ),
    pytest.param(
        make(mcp_servers=[server("docs")]),
        "chat",
        "mcp_servers[0].name",
        "MCP server 'docs' is not used by any mcp_toolset in tools",
        id="mcp-server-without-toolset",
    ),
    pytest.param(
        make(mcp_servers=[server("docs")], tools=[toolset("docs"), toolset("docs")]),
        "chat",
        "tools[1].mcp_server_name",
        "MCP server 'docs' already has a toolset (tools[0]); each server takes exactly one.",
        id="mcp-server-with-two-toolsets",
    ),
    # Secrets
    pytest.param(
        make(system=f"Use {USER_KEY}."),
        "chat",
        "system",
        "looks like an Anthropic API key",
        id="key-in-system",
    ),
    pytest.param(
        make(
            mcp_servers=[server("docs", url=f"https://docs.example.com/mcp?key={ADMIN_KEY}")],
            tools=[toolset("docs")],
        ),
        "chat",
        "mcp_servers[0].url",
        "looks like an Anthropic API key",
        id="admin-key-in-url",
    ),
    pytest.param(
        make(subagents=[{"name": "helper", "config": make(tools=[tool("a", description=USER_KEY)])}]),
        "chat",
        "subagents[0].config.tools[0].description",
        "looks like an Anthropic API key",
        id="key-in-subagent",
    ),
    # Caching
    pytest.param(
        make(
            system=[cached_block("a"), cached_block("b"), cached_block("c")],
            tools=[tool("search", cache_control={"type": "ephemeral"})],
        ),
        "chat",
        "cache_control",
        "Too many cache breakpoints: 5, the API allows 4",
        id="five-cache-breakpoints",
    ),
    pytest.param(
        make(cache_control={"type": "ephemeral", "ttl": "10m"}),
        "chat",
        "cache_control.ttl",
        "'10m' is not allowed; use one of: 5m, 1h.",
        id="cache-ttl-unknown",
    ),
    # Subagents
    pytest.param(
        make(subagents=[{"name": "helper", "config": make()}, {"name": "helper", "config": make()}]),
        "chat",
        "subagents[1].name",
        "Subagent name 'helper' is already used by subagents[0].",
        id="subagent-names-duplicate",
    ),
    pytest.param(
        make(subagents=[{"name": "helper", "config": make(max_tokens=500_000)}]),
        "chat",
        "subagents[0].config.max_tokens",
        "above the output limit of Claude Haiku 5.5",
        id="subagent-rule-error",
    ),
    pytest.param(
        make(
            subagents=[
                {"name": "h", "config": make(tools=[tool("a"), tool("b", input_schema={"type": "string"})])}
            ]
        ),
        "chat",
        "subagents[0].config.tools[1].input_schema.type",
        "must have type 'object'",
        id="subagent-schema-error",
    ),
    pytest.param(
        make(subagents=[{"name": "helper", "config": make(model="claude-3-opus-20240229")}]),
        "chat",
        "subagents[0].config.model",
        "was retired on 2026-01-05",
        id="subagent-model-retired",
    ),
]

TOOL_WARNINGS = [
    pytest.param(
        make(
            mcp_servers=[server("crm")],
            tools=[toolset("crm")],
            tool_choice={"type": "tool", "name": "create_lead"},
        ),
        "tool_choice.name",
        "cannot be checked here",
        id="tool-choice-maybe-mcp-tool",
    ),
]


@pytest.mark.parametrize(("content", "surface"), TOOL_VALID)
def test_validate_config__valid_tools_or_nesting__has_no_issues(content, surface):
    result = validate(content, surface)

    assert result.errors == []
    assert result.warnings == []


@pytest.mark.parametrize(("content", "surface", "path", "message"), TOOL_ERRORS)
def test_validate_config__invalid_tools_or_nesting__reports_one_error_at_path(
    content, surface, path, message
):
    result = validate(content, surface)

    assert [issue.path for issue in result.errors] == [path]
    assert message in result.errors[0].message


@pytest.mark.parametrize(("content", "path", "message"), TOOL_WARNINGS)
def test_validate_config__unverifiable_tool_choice__warns_at_path(content, path, message):
    result = validate(content)

    assert result.errors == []
    assert [issue.path for issue in result.warnings] == [path]
    assert message in result.warnings[0].message


@pytest.mark.parametrize("key", [USER_KEY, ADMIN_KEY])
def test_validate_config__api_key_anywhere__never_echoed(key):
    content = make(
        **{key: 1},
        model=key,
        system=key,
        tools=[tool(key), tool(key, description=f"token {key}")],
        tool_choice={"type": "tool", "name": f"{key}x"},
        mcp_servers=[server(key), server(key)],
        subagents=[{"name": key, "config": make()}, {"name": key, "config": make()}],
    )

    result = validate(content)

    reported = " ".join(f"{issue.path} {issue.message}" for issue in result.errors)
    assert result.errors
    assert "sk-ant" not in reported
    assert {issue.code for issue in result.errors} >= {
        "api_key_in_config",
        "unknown_field",
        "duplicate_tool_name",
        "unknown_tool_choice",
        "duplicate_mcp_server",
        "unused_mcp_server",
        "duplicate_subagent_name",
    }
