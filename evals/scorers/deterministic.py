"""Deterministic scorers: text match, regex, JSON shape and fields, tool calls, stop reason, length."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from evals.scorers.base import Answer, Case, Context, Outcome, ScorerError, ratio

Params = Mapping[str, Any]
_REGEX_FLAGS = {"IGNORECASE": re.IGNORECASE, "MULTILINE": re.MULTILINE, "DOTALL": re.DOTALL}


def _expected_text(case: Case, params: Params) -> str:
    expected = params.get("text")
    return str(expected) if expected is not None else str(case.reference_field("text"))


def _fold(text: str, params: Params) -> str:
    text = text.strip() if params.get("strip", True) else text
    return text if params.get("case_sensitive", True) else text.casefold()


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def exact(answer: Answer, case: Case, params: Params, context: Context) -> Outcome:
    expected = _expected_text(case, params)
    if _fold(answer.text, params) == _fold(expected, params):
        return Outcome(1.0, "The answer is exactly the expected text.")
    return Outcome(0.0, f"The answer differs from the expected text {_short(expected)}.")


def contains(answer: Answer, case: Case, params: Params, context: Context) -> Outcome:
    expected = _expected_text(case, params)
    if _fold(expected, params) in _fold(answer.text, params):
        return Outcome(1.0, f"The answer contains {_short(expected)}.")
    return Outcome(0.0, f"The answer does not contain {_short(expected)}.")


def compile_regex(params: Params) -> re.Pattern[str]:
    flags = 0
    for name in params.get("flags", []):
        flags |= _REGEX_FLAGS[name]
    return re.compile(str(params["pattern"]), flags)


def regex(answer: Answer, case: Case, params: Params, context: Context) -> Outcome:
    pattern = compile_regex(params)
    if pattern.search(answer.text):
        return Outcome(1.0, f"The answer matches the pattern {_short(pattern.pattern)}.")
    return Outcome(0.0, f"The answer does not match the pattern {_short(pattern.pattern)}.")


def json_schema(answer: Answer, case: Case, params: Params, context: Context) -> Outcome:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(params["schema"])
    errors = sorted(validator.iter_errors(answer.json()), key=lambda e: list(e.absolute_path))
    if not errors:
        return Outcome(1.0, "The answer is JSON of the required shape.")
    problems = "; ".join(f"{_json_path(list(e.absolute_path))}: {e.message}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return Outcome(0.0, f"The answer's JSON does not have the required shape: {problems}{more}.")


def _json_path(segments: list[Any]) -> str:
    path = "$"
    for segment in segments:
        path += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return path


def json_fields(answer: Answer, case: Case, params: Params, context: Context) -> Outcome:
    expected = case.reference_field("json")
    if not isinstance(expected, Mapping):
        raise ScorerError("The case's reference JSON is not an object, so it has no fields to compare.")
    actual = answer.json()
    if not isinstance(actual, Mapping):
        return Outcome(0.0, "The answer is JSON but not an object, so none of the expected fields is there.")
    fields = list(params.get("fields") or expected.keys())
    wrong = [name for name in fields if name not in actual or actual[name] != expected.get(name)]
    score = ratio(len(fields) - len(wrong), len(fields))
    if not wrong:
        return Outcome(score, f"All {len(fields)} fields match the reference.")
    return Outcome(
        score,
        f"{len(fields) - len(wrong)} of {len(fields)} fields match the reference; wrong or missing: "
        f"{', '.join(wrong)}.",
    )


def tool_calls(answer: Answer, case: Case, params: Params, context: Context) -> Outcome:
    expected = case.reference_field("tool_calls")
    if not isinstance(expected, list):
        raise ScorerError("The case's reference tool_calls is not a list.")
    expected_calls = [_call_key(call) for call in expected]
    actual_calls = [_call_key(call) for call in answer.tool_calls]
    if params.get("ordered", True):
        matched = sum(1 for want, got in zip(expected_calls, actual_calls, strict=False) if want == got)
    else:
        remaining = list(actual_calls)
        matched = 0
        for want in expected_calls:
            if want in remaining:
                remaining.remove(want)
                matched += 1
    total = max(len(expected_calls), len(actual_calls))
    score = ratio(matched, total)
    order = "in order" if params.get("ordered", True) else "in any order"
    if score == 1.0:
        return Outcome(1.0, f"The answer makes the {len(expected_calls)} expected tool calls {order}.")
    names = ", ".join(call["name"] for call in answer.tool_calls) or "none"
    wanted = ", ".join(str(call.get("name")) for call in expected) or "none"
    return Outcome(
        score,
        f"{matched} of {total} tool calls match {order} (name and arguments). "
        f"Expected: {wanted}; made: {names}.",
    )


def _call_key(call: Any) -> tuple[str, str]:
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
        raise ScorerError("A tool call needs a name.")
    return call["name"], json.dumps(call.get("input", {}), sort_keys=True)


def end_turn(answer: Answer, case: Case, params: Params, context: Context) -> Outcome:
    if answer.stop_reason is None:
        raise ScorerError("The answer has no stop reason.")
    if answer.stop_reason == "end_turn":
        return Outcome(1.0, "The model finished its answer by itself.")
    return Outcome(0.0, f"The answer stopped for '{answer.stop_reason}', not because the model finished.")


def output_tokens(answer: Answer, case: Case, params: Params, context: Context) -> Outcome:
    if answer.output_tokens is None:
        raise ScorerError("The answer's output token count is unknown.")
    ceiling = int(params["max"])
    if answer.output_tokens <= ceiling:
        return Outcome(1.0, f"The answer used {answer.output_tokens} output tokens, within {ceiling}.")
    return Outcome(
        0.0, f"The answer used {answer.output_tokens} output tokens, over the ceiling of {ceiling}."
    )
