import json
from typing import Any

from flags.diff import CollectionDiff, DiffLine, FieldChange, ItemChange, diff_configs

EPHEMERAL = {"type": "ephemeral"}


def make_content(**overrides: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 1024}
    content.update(overrides)
    return content


def make_tool(name: str, **overrides: Any) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "name": name,
        "description": f"The {name} tool",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    tool.update(overrides)
    return tool


def make_server(name: str, **overrides: Any) -> dict[str, Any]:
    server = {"type": "url", "name": name, "url": f"https://{name}.example.com/mcp"}
    server.update(overrides)
    return server


def test_diff_configs__identical__no_change():
    content = make_content(
        system="Be kind.",
        tools=[make_tool("search")],
        subagents=[{"name": "helper", "config": make_content()}],
    )

    diff = diff_configs(content, json.loads(json.dumps(content)))

    assert diff.kinds == ["no_change"]
    assert diff.changes == []
    assert not diff.tools
    assert not diff.mcp_servers
    assert not diff.subagents
    assert diff.summary() == "No change"


def test_diff_configs__model_changed__model_swap():
    diff = diff_configs(make_content(model="claude-sonnet-5"), make_content())

    assert diff.kinds == ["model_swap"]
    assert diff.changes == [FieldChange("model", "claude-sonnet-5", "claude-sonnet-5-5")]


def test_diff_configs__nested_parameter_changed__change_has_dotted_path():
    old = make_content(output_config={"effort": "high"})
    new = make_content(output_config={"effort": "max"})

    diff = diff_configs(old, new)

    assert diff.kinds == ["parameter_change"]
    assert diff.changes == [FieldChange("output_config.effort", "high", "max")]


def test_diff_configs__parameter_added__old_value_is_none():
    diff = diff_configs(make_content(), make_content(thinking={"type": "adaptive"}))

    assert diff.changes == [FieldChange("thinking", None, {"type": "adaptive"})]


def test_diff_configs__list_parameter_changed__compared_as_whole_value():
    old = make_content(betas=["a"])
    new = make_content(betas=["a", "b"])

    assert diff_configs(old, new).changes == [FieldChange("betas", ["a"], ["a", "b"])]


def test_diff_configs__several_parameters__changes_sorted_by_path():
    old = make_content(max_iterations=5, anthropic_version="2026-10-21")
    new = make_content(max_iterations=10, anthropic_version="2023-06-01", max_tokens=2048)

    paths = [change.path for change in diff_configs(old, new).changes]

    assert paths == ["anthropic_version", "max_iterations", "max_tokens"]


def test_diff_configs__system_text_edited__prompt_edit():
    diff = diff_configs(make_content(system="Be kind."), make_content(system="Be brief."))

    assert diff.kinds == ["prompt_edit"]


def test_diff_configs__replaced_line__split_into_delete_then_insert():
    old = make_content(system="Intro\nBe kind.\nOutro")
    new = make_content(system="Intro\nBe brief.\nAlways cite.\nOutro")

    assert diff_configs(old, new).system == [
        DiffLine("equal", 1, 1, "Intro"),
        DiffLine("delete", 2, None, "Be kind."),
        DiffLine("insert", None, 2, "Be brief."),
        DiffLine("insert", None, 3, "Always cite."),
        DiffLine("equal", 3, 4, "Outro"),
    ]


def test_diff_configs__system_blocks__diffed_as_joined_text():
    old = make_content(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}])
    new = make_content(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "C"}])

    assert diff_configs(old, new).system == [
        DiffLine("equal", 1, 1, "A"),
        DiffLine("delete", 2, None, "B"),
        DiffLine("insert", None, 2, "C"),
    ]


def test_diff_configs__system_string_to_same_text_block__no_change():
    old = make_content(system="Be kind.")
    new = make_content(system=[{"type": "text", "text": "Be kind."}])

    assert diff_configs(old, new).kinds == ["no_change"]


def test_diff_configs__system_block_breakpoint_added__block_cache_control_change():
    old = make_content(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}])
    new = make_content(
        system=[
            {"type": "text", "text": "A"},
            {"type": "text", "text": "B", "cache_control": EPHEMERAL},
        ]
    )

    diff = diff_configs(old, new)

    assert diff.changes == [FieldChange("system[1].cache_control", None, EPHEMERAL)]
    assert diff.kinds == ["parameter_change"]


def test_diff_configs__tools_added_removed_changed__collection_diff():
    old = make_content(tools=[make_tool("search"), make_tool("lookup")])
    new = make_content(tools=[make_tool("search", description="Search the web"), make_tool("calendar")])

    diff = diff_configs(old, new)

    assert diff.tools == CollectionDiff(
        added=["calendar"],
        removed=["lookup"],
        changed=[
            ItemChange(
                "search",
                [FieldChange("description", "The search tool", "Search the web")],
            )
        ],
    )
    assert diff.kinds == ["tool_set_change"]


def test_diff_configs__tool_schema_changed__change_has_nested_path():
    old = make_content(tools=[make_tool("search")])
    new = make_content(
        tools=[
            make_tool(
                "search",
                input_schema={
                    "type": "object",
                    "properties": {"q": {"type": "integer"}},
                },
            )
        ]
    )

    assert diff_configs(old, new).tools.changed == [
        ItemChange(
            "search",
            [FieldChange("input_schema.properties.q.type", "string", "integer")],
        )
    ]


def test_diff_configs__tools_reordered__tool_set_change():
    old = make_content(tools=[make_tool("a"), make_tool("b")])
    new = make_content(tools=[make_tool("b"), make_tool("a")])

    diff = diff_configs(old, new)

    assert diff.tools == CollectionDiff(added=[], removed=[], changed=[], reordered=True)
    assert diff.kinds == ["tool_set_change"]


def test_diff_configs__mcp_server_added__mcp_change_keyed_by_name():
    old = make_content()
    new = make_content(
        mcp_servers=[make_server("crm")],
        tools=[{"type": "mcp_toolset", "mcp_server_name": "crm"}],
    )

    diff = diff_configs(old, new)

    assert diff.mcp_servers.added == ["crm"]
    assert diff.tools.added == ["crm"]
    assert diff.kinds == ["mcp_change", "tool_set_change"]


def test_diff_configs__mcp_server_secret_changed__item_change():
    old = make_content(mcp_servers=[{**make_server("crm"), "authorization_secret": "CRM_A"}])
    new = make_content(mcp_servers=[{**make_server("crm"), "authorization_secret": "CRM_B"}])

    diff = diff_configs(old, new)

    assert diff.mcp_servers.changed == [
        ItemChange("crm", [FieldChange("authorization_secret", "CRM_A", "CRM_B")])
    ]
    assert diff.kinds == ["mcp_change"]


def test_diff_configs__mcp_toolset_config_changed__mcp_change():
    toolset = {"type": "mcp_toolset", "mcp_server_name": "crm"}
    old = make_content(mcp_servers=[make_server("crm")], tools=[toolset])
    new = make_content(
        mcp_servers=[make_server("crm")],
        tools=[{**toolset, "default_config": {"enabled": False}}],
    )

    diff = diff_configs(old, new)

    assert diff.tools.changed == [
        ItemChange("crm", [FieldChange("default_config", None, {"enabled": False})])
    ]
    assert diff.kinds == ["mcp_change", "tool_set_change"]


def test_diff_configs__subagent_added__subagent_change():
    new = make_content(subagents=[{"name": "researcher", "config": make_content()}])

    diff = diff_configs(make_content(), new)

    assert diff.subagents.added == ["researcher"]
    assert diff.kinds == ["subagent_change"]


def test_diff_configs__subagent_config_changed__nested_field_changes():
    old_config = make_content(system="Research.", tools=[make_tool("search")])
    new_config = make_content(
        model="claude-haiku-5-5",
        system="Research carefully.",
        tools=[make_tool("search", description="Search"), make_tool("fetch")],
    )
    old = make_content(subagents=[{"name": "researcher", "description": "R", "config": old_config}])
    new = make_content(subagents=[{"name": "researcher", "description": "RR", "config": new_config}])

    diff = diff_configs(old, new)

    assert diff.subagents.changed == [
        ItemChange(
            "researcher",
            [
                FieldChange("description", "R", "RR"),
                FieldChange("config.model", "claude-sonnet-5-5", "claude-haiku-5-5"),
                FieldChange("config.system", "Research.", "Research carefully."),
                FieldChange("config.tools[fetch]", None, make_tool("fetch")),
                FieldChange("config.tools[search].description", "The search tool", "Search"),
            ],
        )
    ]
    assert diff.kinds == ["subagent_change"]


def test_diff_configs__no_breakpoints__tool_added_is_not_cache_prefix_change():
    old = make_content(tools=[make_tool("a")], system="S")
    new = make_content(tools=[make_tool("a"), make_tool("b")], system="S")

    assert "cache_prefix_changed" not in diff_configs(old, new).kinds


def test_diff_configs__breakpoint_on_system__appended_tool_changes_cache_prefix():
    system = [{"type": "text", "text": "S", "cache_control": EPHEMERAL}]
    old = make_content(tools=[make_tool("a")], system=system)
    new = make_content(tools=[make_tool("a"), make_tool("b")], system=system)

    assert diff_configs(old, new).kinds == ["cache_prefix_changed", "tool_set_change"]


def test_diff_configs__breakpoint_on_last_tool__appended_tool_keeps_cache_prefix():
    old = make_content(tools=[make_tool("a", cache_control=EPHEMERAL)])
    new = make_content(tools=[make_tool("a", cache_control=EPHEMERAL), make_tool("b")])

    assert "cache_prefix_changed" not in diff_configs(old, new).kinds


def test_diff_configs__breakpoint_on_last_tool__system_edit_keeps_cache_prefix():
    tools = [make_tool("a", cache_control=EPHEMERAL)]
    old = make_content(tools=tools, system="Be kind.")
    new = make_content(tools=tools, system="Be brief.")

    assert diff_configs(old, new).kinds == ["prompt_edit"]


def test_diff_configs__edit_after_system_breakpoint__keeps_cache_prefix():
    old = make_content(
        system=[
            {"type": "text", "text": "Stable", "cache_control": EPHEMERAL},
            {"type": "text", "text": "Old"},
        ]
    )
    new = make_content(
        system=[
            {"type": "text", "text": "Stable", "cache_control": EPHEMERAL},
            {"type": "text", "text": "New"},
        ]
    )

    assert diff_configs(old, new).kinds == ["prompt_edit"]


def test_diff_configs__edit_before_system_breakpoint__changes_cache_prefix():
    old = make_content(system=[{"type": "text", "text": "Old", "cache_control": EPHEMERAL}])
    new = make_content(system=[{"type": "text", "text": "New", "cache_control": EPHEMERAL}])

    assert diff_configs(old, new).kinds == ["cache_prefix_changed", "prompt_edit"]


def test_diff_configs__breakpoint_added_in_new_version__cached_part_compared_to_old():
    old = make_content(tools=[make_tool("a")], system="Old")
    new = make_content(
        tools=[make_tool("a")],
        system=[{"type": "text", "text": "New", "cache_control": EPHEMERAL}],
    )

    assert "cache_prefix_changed" in diff_configs(old, new).kinds


def test_diff_configs__breakpoint_ttl_changed__keeps_cache_prefix():
    old = make_content(tools=[make_tool("a", cache_control=EPHEMERAL)])
    new = make_content(tools=[make_tool("a", cache_control={"type": "ephemeral", "ttl": "1h"})])

    assert diff_configs(old, new).kinds == ["tool_set_change"]


def test_diff_configs__automatic_caching__system_edit_changes_cache_prefix():
    old = make_content(cache_control=EPHEMERAL, system="Be kind.")
    new = make_content(cache_control=EPHEMERAL, system="Be brief.")

    assert diff_configs(old, new).kinds == ["cache_prefix_changed", "prompt_edit"]


def test_diff_configs__automatic_caching_turned_on__unchanged_prefix_kept():
    old = make_content(system="Be kind.")
    new = make_content(system="Be kind.", cache_control=EPHEMERAL)

    assert diff_configs(old, new).kinds == ["parameter_change"]


def test_diff_configs__toolset_server_url_changed_before_breakpoint__changes_cache_prefix():
    tools = [{"type": "mcp_toolset", "mcp_server_name": "crm", "cache_control": EPHEMERAL}]
    old = make_content(tools=tools, mcp_servers=[make_server("crm")])
    new = make_content(
        tools=tools,
        mcp_servers=[make_server("crm", url="https://crm2.example.com/mcp")],
    )

    assert diff_configs(old, new).kinds == ["cache_prefix_changed", "mcp_change"]


def test_config_diff_summary__model_prompt_and_cache__one_line():
    system = "One\nTwo\nThree"
    old = make_content(
        model="claude-sonnet-5",
        system=[{"type": "text", "text": system, "cache_control": EPHEMERAL}],
    )
    new = make_content(
        system=[
            {
                "type": "text",
                "text": "One\nTwo!\nThree\nFour\nFive",
                "cache_control": EPHEMERAL,
            }
        ]
    )

    summary = diff_configs(old, new).summary()

    assert summary == (
        "Model swap claude-sonnet-5 → claude-sonnet-5-5; prompt edit (+3 \N{MINUS SIGN}1 lines); "
        "cache prefix changed"
    )


def test_config_diff_summary__collections_and_parameters__named():
    old = make_content(
        tools=[make_tool("lookup")],
        output_config={"effort": "high"},
        subagents=[{"name": "r", "config": make_content()}],
    )
    new = make_content(
        tools=[make_tool("search")],
        mcp_servers=[make_server("crm")],
        output_config={"effort": "low"},
        subagents=[{"name": "r", "config": make_content(max_tokens=5)}],
    )

    summary = diff_configs(old, new).summary()

    assert summary == (
        "Tool set change (+search \N{MINUS SIGN}lookup); MCP change (+crm); "
        "subagent change (~r); parameter change (output_config.effort)"
    )


def test_config_diff_as_dict__any_diff__json_serialisable():
    old = make_content(model="claude-sonnet-5", system="A", tools=[make_tool("a")])
    new = make_content(system="B", tools=[make_tool("a", description="x")])

    data = json.loads(json.dumps(diff_configs(old, new).as_dict()))

    assert data["kinds"] == ["model_swap", "prompt_edit", "tool_set_change"]
    assert data["changes"] == [{"path": "model", "old": "claude-sonnet-5", "new": "claude-sonnet-5-5"}]
    assert data["system"][0] == {
        "op": "delete",
        "old_no": 1,
        "new_no": None,
        "text": "A",
    }
    assert data["tools"]["changed"][0]["name"] == "a"
    assert data["summary"].startswith("Model swap")


def test_diff_configs__result_mutated__inputs_unaffected():
    old = make_content(thinking={"type": "adaptive"})
    new = make_content()

    diff_configs(old, new).changes[0].old["type"] = "mutated"

    assert old["thinking"] == {"type": "adaptive"}
