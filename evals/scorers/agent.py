"""Agent task completion, and the per-case assertions it checks on the final assistant turn.

An assertion is {"type": <one of ASSERTION_TYPES>, "value": <string>}; `case_sensitive`
(default true) applies to the text assertions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from evals.scorers.base import Answer, Case, Context, Outcome, ScorerError, ratio

ASSERTION_TYPES = ("contains", "not_contains", "regex", "equals", "tool_called")


def assertion_issues(assertions: object) -> list[tuple[str, str]]:
    """(path, message) for each malformed assertion; paths are relative to the assertions list."""
    if not isinstance(assertions, list):
        return [("", "Assertions must be a list.")]
    issues: list[tuple[str, str]] = []
    for index, assertion in enumerate(assertions):
        if not isinstance(assertion, Mapping):
            issues.append((f"[{index}]", "An assertion is an object with a type and a value."))
            continue
        if assertion.get("type") not in ASSERTION_TYPES:
            issues.append((f"[{index}].type", f"Use one of: {', '.join(ASSERTION_TYPES)}."))
        if not isinstance(assertion.get("value"), str):
            issues.append((f"[{index}].value", "The value must be a string."))
        elif assertion.get("type") == "regex":
            try:
                re.compile(assertion["value"])
            except re.error as error:
                issues.append((f"[{index}].value", f"The regular expression does not compile: {error}."))
    return issues


def _holds(assertion: Mapping[str, Any], answer: Answer) -> bool:
    kind, value = assertion["type"], str(assertion["value"])
    if kind == "tool_called":
        return any(call["name"] == value for call in answer.tool_calls)
    text = answer.text
    if not assertion.get("case_sensitive", True):
        text, value = text.casefold(), value.casefold()
    if kind == "contains":
        return value in text
    if kind == "not_contains":
        return value not in text
    if kind == "equals":
        return text.strip() == value.strip()
    return re.search(value, text) is not None


def describe(assertion: Mapping[str, Any]) -> str:
    words = {
        "contains": "contains",
        "not_contains": "does not contain",
        "regex": "matches",
        "equals": "equals",
        "tool_called": "calls the tool",
    }
    return f"{words[assertion['type']]} {assertion['value']!r}"


def unmet(assertions: Sequence[Mapping[str, Any]], answer: Answer) -> list[str]:
    return [describe(assertion) for assertion in assertions if not _holds(assertion, answer)]


def task_completion(answer: Answer, case: Case, params: Mapping[str, Any], context: Context) -> Outcome:
    """The share of the checks met: each assertion, a finished turn, and the iteration bound."""
    if issues := assertion_issues(list(case.assertions)):
        path, message = issues[0]
        raise ScorerError(f"The case's assertions{path} cannot be checked: {message}")
    failures = [f"the final answer should have {what}" for what in unmet(case.assertions, answer)]
    checks = len(case.assertions) + 1
    if answer.stop_reason == "max_tokens":
        failures.append("the agent ran out of output tokens (max_tokens)")
    limit = params.get("max_iterations", context.max_iterations)
    if limit is not None:
        checks += 1
        if answer.iterations > int(limit):
            failures.append(f"it took {answer.iterations} iterations, over the limit of {limit}")
    score = ratio(checks - len(failures), checks)
    if not failures:
        return Outcome(1.0, f"The agent completed the task: all {checks} checks are met.")
    return Outcome(score, "The agent did not complete the task: " + "; ".join(failures) + ".")
