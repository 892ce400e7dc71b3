"""A case's verdict from its eval set version's scorer specs.

A case passes when every required scorer passes; a required scorer that errored leaves the
case without a verdict (an error is never a failure). Its score is the weighted mean of the
scores that exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ScoreRow:
    """One scorer's result; `stored` when it was read back from the database, not computed now."""

    scorer: str
    scorer_version: int
    params_hash: str
    score: float | None
    passed: bool | None
    error: str = ""
    explanation: str = ""
    weight: float = 1.0
    required: bool = True
    usage: dict[str, Any] | None = None
    cost_micro_usd: int = 0
    judge_version_id: int | None = None
    stored: bool = False

    def fields(self) -> dict[str, Any]:
        """The CaseScore columns of this row."""
        return {
            "scorer": self.scorer,
            "scorer_version": self.scorer_version,
            "params_hash": self.params_hash,
            "score": self.score,
            "passed": self.passed,
            "error": self.error,
            "explanation": self.explanation,
            "usage": self.usage,
            "cost_micro_usd": self.cost_micro_usd,
            "judge_version_id": self.judge_version_id,
        }


@dataclass(frozen=True)
class CaseVerdict:
    rows: Sequence[ScoreRow] = field(default_factory=tuple)
    passed: bool | None = None
    score: float | None = None
    error: str = ""


def combine(rows: Sequence[ScoreRow]) -> CaseVerdict:
    """The case's verdict from its scorers' rows."""
    if not rows:
        return CaseVerdict(rows, None, None, "")
    required = [row for row in rows if row.required]
    errors = [f"{row.scorer}: {row.error}" for row in required if row.error]
    passed = None if errors else all(bool(row.passed) for row in required)
    scored = [row for row in rows if not row.error and row.score is not None]
    weight = sum(row.weight for row in scored)
    score = sum(row.weight * (row.score or 0.0) for row in scored) / weight if weight > 0 else None
    return CaseVerdict(rows, passed, score, "; ".join(errors))


def scorer_versions(specs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """{scorer name: version} of the specs, as the registry has them now (stored on the run)."""
    if not specs:
        return {}
    from evals.scorers import registry

    return {spec["name"]: registry.get(spec["name"]).version for spec in specs}


def score_answer(specs: Sequence[dict[str, Any]], case: Any, answer: Any) -> CaseVerdict:
    """Score a fresh answer (a CallResult) with every scorer of the specs."""
    if not specs:
        return CaseVerdict()
    from evals.scorers import registry

    return combine([registry.score(spec, case, answer) for spec in specs])


def score_stored(specs: Sequence[dict[str, Any]], case: Any, output: Any) -> CaseVerdict:
    """Score a stored answer: the scores it already has for these scorer versions are reused."""
    if not specs:
        return CaseVerdict()
    from evals.scorers import registry

    return combine([registry.score(spec, case, output) for spec in specs])
