"""Eval cases as files: JSON Lines and CSV, read with line numbers and written back.

JSON Lines: one case object per line (see evals/cases.py); blank lines are skipped.
CSV: a header row naming some of CSV_COLUMNS; `prompt` is a single user turn, `messages` a
JSON list of turns (one of the two), `variables`, `reference_json`, `reference_tool_calls`
and `assertions` hold JSON, `reference_text` plain text, `tags` a JSON list or comma-separated
words. Export writes `messages`, so a file round-trips.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CSV_COLUMNS = (
    "prompt",
    "messages",
    "variables",
    "reference_text",
    "reference_json",
    "reference_tool_calls",
    "assertions",
    "tags",
)
_JSON_COLUMNS = ("messages", "variables", "reference_json", "reference_tool_calls", "assertions")
JSONL = "jsonl"
CSV = "csv"
FORMATS = (JSONL, CSV)


@dataclass(frozen=True)
class ParsedFile:
    """Raw case objects with the line each starts on, and the lines that could not be read."""

    cases: list[object]
    lines: list[int]
    errors: list[tuple[int, str, str]]  # (line, path, message)


def parse(data: str, file_format: str) -> ParsedFile:
    if file_format == JSONL:
        return parse_jsonl(data)
    if file_format == CSV:
        return parse_csv(data)
    raise ValueError(f"unknown format {file_format!r}")


def parse_jsonl(data: str) -> ParsedFile:
    cases: list[object] = []
    lines: list[int] = []
    errors: list[tuple[int, str, str]] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(json.loads(line))
        except ValueError as error:
            errors.append((number, "", f"Not valid JSON: {error.args[0]}."))
            continue
        lines.append(number)
    return ParsedFile(cases, lines, errors)


def parse_csv(data: str) -> ParsedFile:
    reader = csv.reader(io.StringIO(data, newline=""))
    cases: list[object] = []
    lines: list[int] = []
    errors: list[tuple[int, str, str]] = []
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        return ParsedFile([], [], [])
    except csv.Error as error:
        return ParsedFile([], [], [(1, "", f"Not valid CSV: {error}.")])
    unknown = [column for column in header if column not in CSV_COLUMNS]
    if unknown or ("prompt" not in header and "messages" not in header):
        message = f"The header needs 'prompt' or 'messages'; the columns are: {', '.join(CSV_COLUMNS)}."
        if unknown:
            message = f"Unknown column(s) {', '.join(unknown)}. {message}"
        return ParsedFile([], [], [(1, "", message)])
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            errors.append((start, "", f"Not valid CSV: {error}."))
            break
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            errors.append((start, "", f"The row has {len(row)} cells; the header has {len(header)}."))
            continue
        case, problems = _case_from_row(dict(zip(header, row, strict=True)))
        errors += [(start, path, message) for path, message in problems]
        if not problems:
            cases.append(case)
            lines.append(start)
    return ParsedFile(cases, lines, errors)


def _case_from_row(row: Mapping[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    for column in _JSON_COLUMNS:
        cell = row.get(column, "").strip()
        if cell:
            try:
                values[column] = json.loads(cell)
            except ValueError as error:
                problems.append((column, f"Not valid JSON: {error.args[0]}."))
    prompt = row.get("prompt", "")
    if prompt.strip() and "messages" in values:
        problems.append(("prompt", "Give either a prompt or messages, not both."))
    messages = values.get("messages", [{"role": "user", "content": prompt}] if prompt.strip() else None)
    case: dict[str, Any] = {"input": {"messages": messages}}
    if "variables" in values:
        case["input"]["variables"] = values["variables"]
    reference = {
        key: value
        for key, value in (
            ("text", row.get("reference_text") or None),
            ("json", values.get("reference_json")),
            ("tool_calls", values.get("reference_tool_calls")),
        )
        if value is not None
    }
    if reference:
        case["reference"] = reference
    if "assertions" in values:
        case["assertions"] = values["assertions"]
    tags = row.get("tags", "").strip()
    if tags.startswith("["):
        try:
            case["tags"] = json.loads(tags)
        except ValueError as error:
            problems.append(("tags", f"Not valid JSON: {error.args[0]}."))
    elif tags:
        case["tags"] = [tag.strip() for tag in tags.split(",") if tag.strip()]
    return case, problems


def to_jsonl(cases: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(case, ensure_ascii=False, sort_keys=True) + "\n" for case in cases)


def to_csv(cases: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=[c for c in CSV_COLUMNS if c != "prompt"], lineterminator="\n")
    writer.writeheader()
    for case in cases:
        reference = case.get("reference") or {}
        writer.writerow(
            {
                "messages": _json(case["input"]["messages"]),
                "variables": _json(case["input"].get("variables")),
                "reference_text": reference.get("text", ""),
                "reference_json": _json(reference.get("json")),
                "reference_tool_calls": _json(reference.get("tool_calls")),
                "assertions": _json(case.get("assertions") or None),
                "tags": _json(case.get("tags") or None),
            }
        )
    return out.getvalue()


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
