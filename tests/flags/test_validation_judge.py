"""The judge surface: a rubric and a forced verdict tool with a pass/fail or 1-5 verdict."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from flags.forms import starter_content
from flags.validation import catalog_by_id, load_seed, validate_config
from flags.validation.judge import ONE_TO_FIVE, PASS_FAIL, verdict_tool

CATALOG = catalog_by_id(load_seed())
TODAY = date(2026, 12, 5)


def _judge() -> dict[str, Any]:
    return copy.deepcopy(starter_content("judge"))


def _codes(content: dict[str, Any]) -> list[str]:
    return [
        issue.code for issue in validate_config(content, catalog=CATALOG, surface="judge", today=TODAY).errors
    ]


def test_validate_config__starter_judge__valid() -> None:
    assert _codes(_judge()) == []


def test_verdict_tool__passed_boolean__pass_fail_scale() -> None:
    tool, issues = verdict_tool(_judge())
    assert (tool and tool.scale, issues) == (PASS_FAIL, [])


def test_verdict_tool__score_one_to_five__one_to_five_scale() -> None:
    content = _judge()
    content["tools"][0]["input_schema"] = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["score"],
    }
    tool, _ = verdict_tool(content)
    assert tool is not None and tool.scale == ONE_TO_FIVE


def test_validate_config__judge_without_forced_tool__names_tool_choice() -> None:
    content = _judge()
    content["tool_choice"] = {"type": "auto"}
    assert "judge_tool_choice" in _codes(content)


def test_validate_config__judge_without_rubric__names_system() -> None:
    content = _judge()
    del content["system"]
    issues = validate_config(content, catalog=CATALOG, surface="judge", today=TODAY).errors
    assert [(i.path, i.code) for i in issues] == [("system", "judge_rubric")]


def test_validate_config__verdict_not_required__names_the_input_schema() -> None:
    content = _judge()
    content["tools"][0]["input_schema"]["required"] = ["explanation"]
    issues = validate_config(content, catalog=CATALOG, surface="judge", today=TODAY).errors
    assert [(i.path, i.code) for i in issues] == [("tools[0].input_schema", "judge_verdict_schema")]


def test_validate_config__chat_without_verdict_tool__valid() -> None:
    content = _judge()
    del content["tools"], content["tool_choice"]
    assert validate_config(content, catalog=CATALOG, surface="chat", today=TODAY).ok
