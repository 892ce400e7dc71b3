"""How deeply a JSON document nests, measured without recursion, so that measuring a hostile
document cannot exhaust the stack the way parsing, validating or serialising it would."""

from __future__ import annotations

from typing import Any

Path = list[str | int]


def too_deep(document: Any, limit: int) -> Path | None:
    """The path of the first object or list nested more than `limit` levels deep, or None.

    The document itself is level 1: `{"a": [1]}` is 2 levels deep.
    """
    stack: list[tuple[Path, Any, int]] = [([], document, 1)]
    while stack:
        path, value, level = stack.pop()
        if isinstance(value, dict):
            children: list[tuple[str | int, Any]] = [(str(key), item) for key, item in value.items()]
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            continue
        if level > limit:
            return path
        stack.extend((([*path, name], item, level + 1)) for name, item in reversed(children))
    return None


def too_deep_message(limit: int) -> str:
    return f"Nested too deeply: objects and lists may nest at most {limit} levels."


def render_path(path: Path) -> str:
    """['tools', 2, 'input_schema'] as 'tools[2].input_schema'."""
    text = ""
    for segment in path:
        text += f"[{segment}]" if isinstance(segment, int) else (f".{segment}" if text else segment)
    return text
