"""Eval cases: their shape, their content hash, and the checks a version's list of cases passes.

Pure: no Django. Problems are `CaseIssue`s naming the case by index and the path inside it, so
that an import can name the line and the API the `cases[i]` element.

A case: {"input": {"messages": [...], "variables"?: {...}}, "reference"?: {"text"?, "json"?,
"tool_calls"?} | null, "assertions"?: [...], "tags"?: [...]}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evals.scorers.agent import assertion_issues
from flagstaff.canonical import canonical_json, content_hash

CASE_FIELDS = ("input", "reference", "assertions", "tags")
_INPUT_FIELDS = frozenset({"messages", "variables"})
_REFERENCE_FIELDS = frozenset({"text", "json", "tool_calls"})
_MAX_TAG_CHARS = 100


@dataclass(frozen=True, slots=True)
class CaseIssue:
    index: int
    path: str
    message: str


@dataclass(frozen=True)
class CheckedCase:
    input: dict[str, Any]
    reference: dict[str, Any] | None
    assertions: list[Any]
    tags: list[str]
    case_hash: str
    origin: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "reference": self.reference,
            "assertions": self.assertions,
            "tags": self.tags,
        }


def case_hash(
    *, input: Mapping[str, Any], reference: Mapping[str, Any] | None, assertions: Sequence[Any]
) -> str:
    """SHA-256 of the canonical JSON of what decides a case's result (tags do not)."""
    return content_hash({"input": input, "reference": reference, "assertions": list(assertions)})


def check_case(raw: object, index: int, *, max_bytes: int) -> tuple[CheckedCase | None, list[CaseIssue]]:
    if not isinstance(raw, Mapping):
        return None, [CaseIssue(index, "", "A case is a JSON object with at least an input.")]
    issues = [CaseIssue(index, key, "Unknown field.") for key in sorted(set(raw) - set(CASE_FIELDS))]
    issues += [CaseIssue(index, f"input{p}", m) for p, m in _input_issues(raw.get("input"))]
    reference = raw.get("reference")
    issues += [CaseIssue(index, f"reference{p}", m) for p, m in _reference_issues(reference)]
    assertions = raw.get("assertions", [])
    issues += [CaseIssue(index, f"assertions{p}", m) for p, m in assertion_issues(assertions)]
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(
        isinstance(t, str) and 0 < len(t) <= _MAX_TAG_CHARS for t in tags
    ):
        issues.append(
            CaseIssue(index, "tags", f"Tags are a list of strings of 1 to {_MAX_TAG_CHARS} characters.")
        )
    if issues:
        return None, issues
    size = len(canonical_json(dict(raw)).encode())
    if size > max_bytes:
        return None, [CaseIssue(index, "", f"The case is {size:,} bytes; the limit is {max_bytes:,} bytes.")]
    input_ = dict(raw["input"])
    reference = dict(reference) if reference else None
    return (
        CheckedCase(
            input=input_,
            reference=reference,
            assertions=list(assertions),
            tags=list(dict.fromkeys(tags)),
            case_hash=case_hash(input=input_, reference=reference, assertions=assertions),
        ),
        [],
    )


def _input_issues(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, Mapping):
        return [("", 'The input is an object: {"messages": [...], "variables": {...}}.')]
    issues = [(f".{key}", "Unknown field.") for key in sorted(set(value) - _INPUT_FIELDS)]
    messages = value.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*issues, (".messages", "The messages are a non-empty list of turns.")]
    for position, message in enumerate(messages):
        here = f".messages[{position}]"
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            issues.append((f"{here}.role", "Each turn has a role, 'user' or 'assistant'."))
            continue
        content = message.get("content")
        if isinstance(content, str):
            if not content:
                issues.append((f"{here}.content", "The content is empty."))
        elif (
            not isinstance(content, list)
            or not content
            or not all(isinstance(block, Mapping) and isinstance(block.get("type"), str) for block in content)
        ):
            issues.append((f"{here}.content", "The content is a string or a list of blocks with a type."))
    if messages and isinstance(messages[0], Mapping) and messages[0].get("role") == "assistant":
        issues.append((".messages[0].role", "The conversation starts with a user turn."))
    variables = value.get("variables", {})
    if not isinstance(variables, Mapping):
        issues.append((".variables", "The variables are an object of names to values."))
    return issues


def _reference_issues(value: object) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping) or not value:
        return [("", 'The reference is null or an object with "text", "json" or "tool_calls".')]
    issues = [(f".{key}", "Unknown field.") for key in sorted(set(value) - _REFERENCE_FIELDS)]
    if "text" in value and not isinstance(value["text"], str):
        issues.append((".text", "The expected text is a string."))
    calls = value.get("tool_calls")
    if "tool_calls" in value:
        if not isinstance(calls, list):
            issues.append((".tool_calls", "The expected tool calls are a list."))
        else:
            for position, call in enumerate(calls):
                if not (
                    isinstance(call, Mapping)
                    and isinstance(call.get("name"), str)
                    and isinstance(call.get("input", {}), Mapping)
                ):
                    issues.append(
                        (f".tool_calls[{position}]", 'A tool call is {"name": ..., "input": {...}}.')
                    )
    return issues


def check_cases(
    raws: Sequence[object],
    *,
    max_cases: int,
    max_bytes: int,
    name: Callable[[int], str] = lambda index: f"cases[{index}]",
) -> tuple[list[CheckedCase], list[CaseIssue]]:
    """Every case checked; a duplicate (same case hash) is refused at the later one, naming the first."""
    if len(raws) > max_cases:
        return [], [
            CaseIssue(max_cases, "", f"A version holds at most {max_cases:,} cases; this has {len(raws):,}.")
        ]
    cases: list[CheckedCase] = []
    issues: list[CaseIssue] = []
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(raws):
        case, problems = check_case(raw, index, max_bytes=max_bytes)
        issues += problems
        if case is None:
            continue
        if case.case_hash in first_seen:
            issues.append(CaseIssue(index, "", f"Duplicate of {name(first_seen[case.case_hash])}."))
            continue
        first_seen[case.case_hash] = index
        cases.append(case)
    return (cases, []) if not issues else ([], issues)


def version_hash(case_hashes: Sequence[str]) -> str:
    """SHA-256 over the ordered case hashes: equal for versions with the same cases in order."""
    return content_hash(list(case_hashes))
