"""Answers to a forced tool call (`tool_choice` {"type": "tool"}): a `tool_use` block whose input
the test scripts, e.g. an LLM judge's structured verdict."""

import json
import secrets
from collections.abc import Callable

from demo.fake_anthropic.messages import count_tokens
from demo.fake_anthropic.wire import JSON

# (forced tool name, request body) -> the tool's input, or None to answer with text as usual.
ForcedToolInput = Callable[[str, JSON], JSON | None]


def forced_tool_content(body: JSON, script: ForcedToolInput | None) -> tuple[list[JSON], int] | None:
    """The content blocks and output tokens of the scripted tool call, when the request forces one."""
    choice = body.get("tool_choice")
    if script is None or not isinstance(choice, dict) or choice.get("type") != "tool":
        return None
    name = str(choice.get("name"))
    tool_input = script(name, body)
    if tool_input is None:
        return None
    block = {"type": "tool_use", "id": f"toolu_{secrets.token_hex(12)}", "name": name, "input": tool_input}
    return [block], count_tokens(json.dumps(tool_input))
