"""How validation problems are reported: issues with a path, and safe rendering of values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from flagstaff.api_keys import looks_like_api_key
from flagstaff.nesting import too_deep_message

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MAX_SHOWN_CHARS = 60


@dataclass(frozen=True, slots=True)
class Issue:
    path: str
    message: str
    code: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "code": self.code}


@dataclass(frozen=True, slots=True)
class ValidationResult:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def format_path(segments: Iterable[str | int], prefix: str = "") -> str:
    """Render ['tools', 2, 'input_schema'] as 'tools[2].input_schema', appended to prefix."""
    path = prefix
    for segment in segments:
        if isinstance(segment, int):
            path += f"[{segment}]"
        elif looks_like_api_key(segment):
            path += '["<redacted>"]'
        elif _IDENTIFIER.match(segment):
            path += f".{segment}" if path else segment
        else:
            path += f"[{json.dumps(segment)}]"
    return path


_PATH_SEGMENT = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def parse_path(path: str) -> list[str | int]:
    """The segments of a path written by `format_path`; a redacted key stays '<redacted>'."""
    segments: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_SEGMENT.match(path, position)
        if match is None:
            raise ValueError(f"Not a validation path: {path!r}")
        name, index, quoted = match.groups()
        segments.append(name if name is not None else int(index) if index is not None else json.loads(quoted))
        position = match.end()
    return segments


def nesting_issue(segments: Iterable[str | int], limit: int) -> Issue:
    return Issue(format_path(segments), too_deep_message(limit), "nested_too_deeply")


def join_path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def show(value: object) -> str:
    """Render a value for a message: short, and never echoing something that looks like a key."""
    if isinstance(value, str):
        if looks_like_api_key(value):
            return "'<redacted>'"
        if len(value) > _MAX_SHOWN_CHARS:
            return repr(value[:_MAX_SHOWN_CHARS] + "…")
        return repr(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    return "an object" if isinstance(value, dict) else "a list"
