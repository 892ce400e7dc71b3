"""Where things are in the version editor's config text: the line each validation path starts on.

The validator reports paths (`tools[0].input_schema.type`); the editor shows each issue at its
line. JSON is scanned by hand because the json module keeps no positions; YAML is composed into
nodes, which carry their marks. A path whose last fields are missing (a required field) gets
the line of the nearest part that exists.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from flags.validation import Issue
from flags.validation.issues import parse_path

Segments = tuple[str | int, ...]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
# A JSON scalar other than a string; what it is does not matter here, only where it ends.
_SCALAR = re.compile(r"[^,\]}\s]+")


class NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without aliases: a few nested aliases expand into gigabytes of JSON."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)


@dataclass(frozen=True, slots=True)
class LocatedIssue:
    """An issue and the line (1-based) of the config text it concerns, when there is one."""

    path: str
    message: str
    code: str
    line: int | None


def locate_issues(text: str, issues: Iterable[Issue]) -> list[LocatedIssue]:
    """Each issue with its line in `text` (JSON or YAML that has already parsed)."""
    issues = list(issues)
    lines = _line_map(text) if issues else {}
    return [
        LocatedIssue(issue.path, issue.message, issue.code, line_of(lines, issue.path)) for issue in issues
    ]


def line_of(lines: dict[Segments, int], path: str) -> int | None:
    """The line of `path`, or of its nearest existing ancestor; None for the document itself."""
    segments = tuple(parse_path(path))
    if not segments:
        return None
    while segments not in lines and segments:
        segments = segments[:-1]
    return lines.get(segments)


def _line_map(text: str) -> dict[Segments, int]:
    try:
        json.loads(text)
    except ValueError:
        return _yaml_lines(text)
    return _JsonLines(text).lines


class _JsonLines:
    """The line of every member (its key's line) and list item of a JSON document known to parse."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [index for index, char in enumerate(text) if char == "\n"]
        self.lines: dict[Segments, int] = {}
        self.value(self.skip(0), ())

    def line(self, position: int) -> int:
        return bisect.bisect_left(self.newlines, position) + 1

    def skip(self, position: int) -> int:
        match = _WHITESPACE.match(self.text, position)
        return match.end() if match else position

    def string(self, position: int) -> tuple[str, int]:
        """The string that starts at `position`, and where it ends."""
        match = _STRING.match(self.text, position)
        assert match is not None, "the text parsed as JSON"
        return json.loads(match.group()), match.end()

    def value(self, position: int, path: Segments) -> int:
        """Record the values under `path`; return where the value that starts at `position` ends."""
        self.lines.setdefault(path, self.line(position))
        char = self.text[position]
        if char == "{":
            return self.members(self.skip(position + 1), path)
        if char == "[":
            return self.items(self.skip(position + 1), path)
        if char == '"':
            return self.string(position)[1]
        match = _SCALAR.match(self.text, position)
        return match.end() if match else position + 1

    def members(self, position: int, path: Segments) -> int:
        while self.text[position] != "}":
            key, after_key = self.string(position)
            member = (*path, key)
            # A repeated key: the last one wins, as in json.loads.
            self.lines.pop(member, None)
            self.lines[member] = self.line(position)
            colon = self.skip(after_key)
            position = self.skip(self.value(self.skip(colon + 1), member))
            if self.text[position] == ",":
                position = self.skip(position + 1)
        return position + 1

    def items(self, position: int, path: Segments) -> int:
        index = 0
        while self.text[position] != "]":
            position = self.skip(self.value(position, (*path, index)))
            if self.text[position] == ",":
                position = self.skip(position + 1)
            index += 1
        return position + 1


def _yaml_lines(text: str) -> dict[Segments, int]:
    try:
        root = yaml.compose(text, Loader=NoAliasLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[Segments, int] = {}
    stack: list[tuple[Segments, Any, int]] = [((), root, 1)] if root is not None else []
    while stack:
        path, node, line = stack.pop()
        lines[path] = line
        if isinstance(node, yaml.MappingNode):
            children = [
                ((*path, str(key.value)), value, key.start_mark.line + 1) for key, value in node.value
            ]
        elif isinstance(node, yaml.SequenceNode):
            children = [
                ((*path, index), item, item.start_mark.line + 1) for index, item in enumerate(node.value)
            ]
        else:
            continue
        # Reversed onto the stack, taken in document order: a repeated key's last value wins, as on load.
        stack.extend(reversed(children))
    return lines
