"""The scorer registry: names, versions, parameter checks, and scoring a case with a scorer set.

A scorer spec, as eval set versions and live-scoring policies store it:
{"name": <registry name>, "key": <unique in the set, default the name>, "params": {...},
 "weight": <≥ 0, default 1>, "threshold": <0..1, default the scorer's>, "required": <default true>}.
A scorer passes when its score reaches the threshold; a case passes when every required
scorer passes. Bump a scorer's version whenever its scores could change: stored scores are
keyed by it, so results of an older version are never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evals.scorers import agent, deterministic, judge, similarity
from evals.scorers.base import Answer, Case, Context, Outcome, Result, ScorerError

logger = logging.getLogger(__name__)

ScorerFunction = Callable[[Answer, Case, Mapping[str, Any], Context], Outcome]
ParamCheck = Callable[[Mapping[str, Any]], list[tuple[str, str]]]
_SPEC_FIELDS = frozenset({"name", "key", "params", "weight", "threshold", "required"})
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class ScorerDef:
    name: str
    version: int
    function: ScorerFunction
    description: str
    params: Mapping[str, tuple[type | tuple[type, ...], bool]]  # name -> (type, required)
    check: ParamCheck | None = None
    threshold: float = 1.0
    # Whether it can judge an answer without a reference: live traffic has none.
    reference_free: Callable[[Mapping[str, Any]], bool] = lambda params: True


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    key: str
    params: Mapping[str, Any]
    weight: float
    threshold: float
    required: bool

    @property
    def definition(self) -> ScorerDef:
        return SCORERS[self.name]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "params": dict(self.params),
            "weight": self.weight,
            "threshold": self.threshold,
            "required": self.required,
        }


@dataclass(frozen=True)
class CaseVerdict:
    """A case's verdict under a scorer set: passed is None when a required scorer erred."""

    passed: bool | None
    score: float | None


def _check_regex(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    issues = [
        (f"flags[{i}]", f"Unknown flag {flag!r}; use IGNORECASE, MULTILINE or DOTALL.")
        for i, flag in enumerate(params.get("flags", []))
        if flag not in ("IGNORECASE", "MULTILINE", "DOTALL")
    ]
    if issues:
        return issues
    try:
        deterministic.compile_regex(params)
    except re.error as error:
        return [("pattern", f"The regular expression does not compile: {error}.")]
    return []


def _check_json_schema(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(params["schema"])
    except SchemaError as error:
        suffix = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        return [(f"schema{suffix}", f"Not a valid JSON Schema: {error.message}.")]
    return []


def _check_positive(name: str) -> ParamCheck:
    def check(params: Mapping[str, Any]) -> list[tuple[str, str]]:
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or value < 1):
            return [(name, "Must be a whole number of at least 1.")]
        return []

    return check


def _check_fields(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    fields = params.get("fields", [])
    return [
        (f"fields[{i}]", "A field name is a string.") for i, f in enumerate(fields) if not isinstance(f, str)
    ]


def _literal_given(params: Mapping[str, Any]) -> bool:
    return params.get("text") is not None


_TEXT_PARAMS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "text": (str, False),
    "case_sensitive": (bool, False),
    "strip": (bool, False),
}

SCORERS: dict[str, ScorerDef] = {
    definition.name: definition
    for definition in (
        ScorerDef(
            "exact",
            1,
            deterministic.exact,
            "The answer equals the expected text (params.text, else the reference text).",
            _TEXT_PARAMS,
            reference_free=_literal_given,
        ),
        ScorerDef(
            "contains",
            1,
            deterministic.contains,
            "The answer contains the expected text (params.text, else the reference text).",
            _TEXT_PARAMS,
            reference_free=_literal_given,
        ),
        ScorerDef(
            "regex",
            1,
            deterministic.regex,
            "The answer matches a regular expression.",
            {"pattern": (str, True), "flags": (list, False)},
            check=_check_regex,
        ),
        ScorerDef(
            "json_schema",
            1,
            deterministic.json_schema,
            "The answer is JSON conforming to a JSON Schema.",
            {"schema": ((dict, bool), True)},
            check=_check_json_schema,
        ),
        ScorerDef(
            "json_fields",
            1,
            deterministic.json_fields,
            "The share of the reference JSON's fields the answer gets right.",
            {"fields": (list, False)},
            check=_check_fields,
            reference_free=lambda params: False,
        ),
        ScorerDef(
            "tool_calls",
            1,
            deterministic.tool_calls,
            "The answer makes the reference tool calls (name and arguments).",
            {"ordered": (bool, False)},
            reference_free=lambda params: False,
        ),
        ScorerDef(
            "end_turn",
            1,
            deterministic.end_turn,
            "The model finished by itself (stop_reason end_turn).",
            {},
        ),
        ScorerDef(
            "output_tokens",
            1,
            deterministic.output_tokens,
            "The answer stays within an output-token ceiling.",
            {"max": (int, True)},
            check=_check_positive("max"),
        ),
        ScorerDef(
            "rouge_l",
            1,
            similarity.rouge_l,
            "ROUGE-L F-measure against the reference text.",
            {"stemmer": (bool, False)},
            threshold=0.5,
            reference_free=lambda params: False,
        ),
        ScorerDef(
            "task_completion",
            1,
            agent.task_completion,
            "The agent's final turn meets the case's assertions, not cut by max_tokens, "
            "within max_iterations.",
            {"max_iterations": (int, False)},
            check=_check_positive("max_iterations"),
        ),
        ScorerDef(
            "llm_judge",
            1,
            judge.llm_judge,
            "An LLM judge (a config of surface judge) grades the answer by its rubric.",
            {"judge": (str, True)},
        ),
    )
}


def validate_specs(specs: object, *, path: str = "scorers") -> tuple[list[ScorerSpec], list[dict[str, str]]]:
    """Normalised specs, or every problem as {path, message}; unknown names and bad params included."""
    if not isinstance(specs, list):
        return [], [{"path": path, "message": "Scorers must be a list of scorer specs."}]
    result: list[ScorerSpec] = []
    errors: list[dict[str, str]] = []
    keys: set[str] = set()
    for index, raw in enumerate(specs):
        here = f"{path}[{index}]"
        spec, issues = _validate_spec(raw, here)
        errors += [{"path": p, "message": m} for p, m in issues]
        if spec is None:
            continue
        if spec.key in keys:
            errors.append(
                {"path": f"{here}.key", "message": f"The key '{spec.key}' is used twice in this set."}
            )
            continue
        keys.add(spec.key)
        result.append(spec)
    return (result, []) if not errors else ([], errors)


def _validate_spec(raw: object, here: str) -> tuple[ScorerSpec | None, list[tuple[str, str]]]:
    if not isinstance(raw, Mapping):
        return None, [(here, "A scorer spec is an object with at least a name.")]
    issues = [(f"{here}.{field}", "Unknown field.") for field in sorted(set(raw) - _SPEC_FIELDS)]
    name = raw.get("name")
    definition = SCORERS.get(name) if isinstance(name, str) else None
    if definition is None:
        known = ", ".join(sorted(SCORERS))
        return None, [*issues, (f"{here}.name", f"Unknown scorer {name!r}; use one of: {known}.")]
    params = raw.get("params", {})
    if not isinstance(params, Mapping):
        return None, [*issues, (f"{here}.params", "Params must be an object.")]
    issues += [(f"{here}.params.{p}", m) for p, m in _param_issues(definition, params)]
    key = raw.get("key", name)
    if not isinstance(key, str) or not _KEY.match(key):
        issues.append((f"{here}.key", "Use 1-63 lowercase letters, digits, '-' or '_'."))
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
        issues.append((f"{here}.weight", "The weight is a number of at least 0."))
    threshold = raw.get("threshold", definition.threshold)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        issues.append((f"{here}.threshold", "The threshold is a number from 0 to 1."))
    required = raw.get("required", True)
    if not isinstance(required, bool):
        issues.append((f"{here}.required", "Required is true or false."))
    if issues:
        return None, issues
    return ScorerSpec(str(name), str(key), dict(params), float(weight), float(threshold), required), []


def _param_issues(definition: ScorerDef, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    issues = [(p, "Unknown parameter.") for p in sorted(set(params) - set(definition.params))]
    for name, (kind, required) in definition.params.items():
        if name not in params:
            if required:
                issues.append((name, "This parameter is required."))
            continue
        value = params[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            issues.append((name, f"Must be of type {_type_name(kind)}."))
    if issues or definition.check is None:
        return issues
    return definition.check(params)


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "string", bool: "boolean", int: "integer", list: "list", dict: "object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def is_reference_free(spec: ScorerSpec) -> bool:
    return spec.definition.reference_free(spec.params)


def scorer_versions(specs: Sequence[ScorerSpec]) -> dict[str, int]:
    return {spec.name: spec.definition.version for spec in specs}


def params_hash(spec: ScorerSpec, *, judge_version_id: int | None = None) -> str:
    """What, beside the scorer's name and version, decides a stored score: params, threshold, judge."""
    canonical = json.dumps(
        {"params": spec.params, "threshold": spec.threshold, "judge_version": judge_version_id},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_scorer(spec: ScorerSpec, answer: Answer, case: Case, context: Context) -> Result:
    """Score one answer; whatever goes wrong is an error result, never an exception or a failure."""
    try:
        outcome = spec.definition.function(answer, case, spec.params, context)
    except ScorerError as error:
        return Result(
            None, None, "", error=error.message, cost_micro_usd=error.cost_micro_usd, usage=error.usage
        )
    except Exception as error:
        logger.exception("scorer crashed", extra={"scorer": spec.name})
        return Result(None, None, "", error=f"The scorer {spec.name} failed unexpectedly: {error!r}")
    score = min(1.0, max(0.0, outcome.score))
    return Result(
        score,
        score >= spec.threshold,
        outcome.explanation,
        cost_micro_usd=outcome.cost_micro_usd,
        usage=outcome.usage,
        judge_version_id=outcome.judge_version_id,
    )


def combine(specs: Sequence[ScorerSpec], results: Sequence[Result]) -> CaseVerdict:
    """A case passes when every required scorer passes; its score is the weighted mean of the scores."""
    required = [result for spec, result in zip(specs, results, strict=True) if spec.required]
    if any(result.passed is False for result in required):
        passed: bool | None = False
    elif any(result.is_error for result in required):
        passed = None
    else:
        passed = True
    weighted = [
        (spec.weight, result.score)
        for spec, result in zip(specs, results, strict=True)
        if result.score is not None and spec.weight > 0
    ]
    total = sum(weight for weight, _ in weighted)
    score = sum(weight * value for weight, value in weighted) / total if total else None
    return CaseVerdict(passed=passed, score=score)
