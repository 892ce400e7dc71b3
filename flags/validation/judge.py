"""The contract of a judge config (surface `judge`): a rubric and a forced verdict tool.

An LLM judge answers by calling the tool its config forces (`tool_choice` {"type": "tool"}),
so that its verdict is structured: the tool's input schema requires either `passed`
(boolean: the pass/fail scale) or `score` (integer 1 to 5: the 1-5 scale), and may carry an
`explanation`. The rubric is the config's `system` prompt. The evals' judge scorer reads the
verdict through `verdict_tool`, so the contract is written down here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flags.validation.issues import Issue, join_path

PASS_FAIL = "pass_fail"  # noqa: S105 (a scale name, not a password)
ONE_TO_FIVE = "1-5"
_VERDICT_FIELDS: dict[str, tuple[str, dict[str, object]]] = {
    "passed": (PASS_FAIL, {"type": "boolean"}),
    "score": (ONE_TO_FIVE, {"type": "integer", "minimum": 1, "maximum": 5}),
}


@dataclass(frozen=True, slots=True)
class VerdictTool:
    name: str
    scale: str


def verdict_tool(config: Mapping[str, Any], prefix: str = "") -> tuple[VerdictTool | None, list[Issue]]:
    """The forced verdict tool of a judge config and its scale, or the issues that prevent it."""
    issues: list[Issue] = []
    system = config.get("system")
    if not system:
        issues.append(
            Issue(
                join_path(prefix, "system"), "A judge needs its rubric as the system prompt.", "judge_rubric"
            )
        )
    choice = config.get("tool_choice")
    name = choice.get("name") if isinstance(choice, dict) and choice.get("type") == "tool" else None
    if not isinstance(name, str):
        message = 'A judge must force its verdict tool: tool_choice {"type": "tool", "name": ...}.'
        return None, [*issues, Issue(join_path(prefix, "tool_choice"), message, "judge_tool_choice")]
    tools = _list(config.get("tools"))
    index, tool = next(
        ((i, t) for i, t in enumerate(tools) if isinstance(t, dict) and t.get("name") == name), (None, None)
    )
    if tool is None:
        # The general rules already report a tool_choice that names no tool.
        return None, issues
    schema = _dict(tool.get("input_schema"))
    properties = _dict(schema.get("properties"))
    required = _list(schema.get("required"))
    path = f"{join_path(prefix, 'tools')}[{index}].input_schema"
    scales = [
        scale
        for field, (scale, shape) in _VERDICT_FIELDS.items()
        if field in required and all(_dict(properties.get(field)).get(k) == v for k, v in shape.items())
    ]
    if len(scales) != 1:
        message = (
            "The verdict tool must require exactly one of 'passed' (type boolean: pass/fail) or "
            "'score' (type integer, minimum 1, maximum 5: a 1-5 scale)."
        )
        return None, [*issues, Issue(path, message, "judge_verdict_schema")]
    if issues:
        return None, issues
    return VerdictTool(name=name, scale=scales[0]), []


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
