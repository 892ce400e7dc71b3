"""A case's scores under its eval set version's scorer set, through the scorer registry.

A stored answer keeps its scores: a CaseScore of the same scorer, version and params hash (a
judge's version included) is read back rather than computed again, so a re-run pays no judge
twice either. Judges are resolved once per run: the judge flag's serving version with the
highest number across environments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic
from django.utils import timezone

from evals.models import CaseOutput, EvalCase
from evals.scorers import Answer, Case, Context, Judge, Result, ScorerSpec, combine, params_hash, run_scorer
from evals.scorers import validate_specs as _validate_specs
from flags.models import ConfigVersion, FlagState
from telemetry.price_table import cached_price_table

JUDGE_SCORER = "llm_judge"


@dataclass(frozen=True)
class ScoreRow:
    """One scorer's result as stored; `stored` when it was read back, not computed now."""

    scorer: str
    scorer_version: int
    params_hash: str
    result: Result
    stored: bool = False

    def fields(self) -> dict[str, Any]:
        """The CaseScore columns of this row."""
        return {
            "scorer": self.scorer,
            "scorer_version": self.scorer_version,
            "params_hash": self.params_hash,
            "score": self.result.score,
            "passed": self.result.passed,
            "error": self.result.error,
            "explanation": self.result.explanation,
            "usage": dict(self.result.usage) if self.result.usage is not None else None,
            "cost_micro_usd": self.result.cost_micro_usd,
            "judge_version_id": self.result.judge_version_id,
        }


@dataclass(frozen=True)
class CaseVerdict:
    rows: Sequence[ScoreRow] = field(default_factory=tuple)
    passed: bool | None = None
    score: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Scoring:
    """The run's scorer set with its judges resolved; shared by the run's threads (read-only)."""

    specs: Sequence[ScorerSpec] = ()
    context: Context = field(default_factory=Context)

    def hash_of(self, spec: ScorerSpec) -> str:
        judge = self.context.judges.get(str(spec.params.get("judge"))) if spec.name == JUDGE_SCORER else None
        return params_hash(spec, judge_version_id=judge.version_id if judge is not None else None)


def validated_specs(raw: object) -> list[ScorerSpec]:
    """The specs stored on an eval set version (validated when it was created)."""
    specs, errors = _validate_specs(raw)
    if errors:
        raise ValueError(f"{errors[0]['path']}: {errors[0]['message']}")
    return specs


def scoring_for(raw_specs: object, *, client: anthropic.Anthropic, content: Mapping[str, Any]) -> Scoring:
    specs = validated_specs(raw_specs)
    keys = {str(spec.params.get("judge")) for spec in specs if spec.name == JUDGE_SCORER}
    prices, today = cached_price_table(), timezone.now().date()
    judges = {}
    for key in keys:
        version = _judge_version(key)
        if version is not None:
            judges[key] = Judge(
                content=version.content, client=client, prices=prices, today=today, version_id=version.pk
            )
    max_iterations = content.get("max_iterations")
    return Scoring(
        specs,
        Context(judges=judges, max_iterations=max_iterations if isinstance(max_iterations, int) else None),
    )


def _judge_version(key: str) -> ConfigVersion | None:
    state = (
        FlagState.objects.filter(flag__key=key, serving_version__isnull=False)
        .select_related("serving_version")
        .order_by("-serving_version__number")
        .first()
    )
    return state.serving_version if state is not None else None


def case_of(case: EvalCase) -> Case:
    return Case(input=case.input or {}, reference=case.reference, assertions=case.assertions or ())


def score_answer(scoring: Scoring, case: EvalCase, answer: Answer) -> CaseVerdict:
    """Score a fresh answer with every scorer of the set."""
    rows = [
        _row(scoring, spec, run_scorer(spec, answer, case_of(case), scoring.context))
        for spec in scoring.specs
    ]
    return _verdict(scoring, rows)


def score_stored(scoring: Scoring, case: EvalCase, output: CaseOutput) -> CaseVerdict:
    """Score a stored answer; scores it has under the same scorer, version and params are read back."""
    stored = {(s.scorer, s.scorer_version, s.params_hash): s for s in output.scores.all()}
    answer = answer_of(output)
    rows = []
    for spec in scoring.specs:
        key = (spec.name, spec.definition.version, scoring.hash_of(spec))
        found = stored.get(key)
        if found is not None:
            result = Result(found.score, found.passed, found.explanation, error=found.error)
            rows.append(ScoreRow(*key, result, stored=True))
        else:
            rows.append(_row(scoring, spec, run_scorer(spec, answer, case_of(case), scoring.context)))
    return _verdict(scoring, rows)


def answer_of(output: CaseOutput) -> Answer:
    tokens = (output.usage or {}).get("output_tokens")
    return Answer(
        content=list(output.output or []),
        stop_reason=output.stop_reason or None,
        output_tokens=tokens if isinstance(tokens, int) else None,
        iterations=output.iterations,
    )


def _row(scoring: Scoring, spec: ScorerSpec, result: Result) -> ScoreRow:
    return ScoreRow(spec.name, spec.definition.version, scoring.hash_of(spec), result)


def _verdict(scoring: Scoring, rows: list[ScoreRow]) -> CaseVerdict:
    if not rows:
        return CaseVerdict()
    combined = combine(scoring.specs, [row.result for row in rows])
    errors = [
        f"{row.scorer}: {row.result.error}"
        for spec, row in zip(scoring.specs, rows, strict=True)
        if spec.required and row.result.error
    ]
    return CaseVerdict(
        rows, combined.passed, combined.score, "; ".join(errors) if combined.passed is None else ""
    )
