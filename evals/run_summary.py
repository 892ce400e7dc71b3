"""The summary of an eval run, computed from its per-case results. Pure: no Django.

- Pass rate over the cases that have an answer and a verdict (a case whose call or scorer
  errored is counted under `errors`, never as a failure), with the Wilson score 95 % interval
  (Wilson 1927; `evals.stats.wilson_interval`).
- Mean score per scorer over the cases that scorer scored without error.
- Cost in micro-USD, total and per answered case (reused answers are included at what they
  cost when first paid for, so that runs compare; `cost_micro_usd` on the run is what this
  run paid); cases whose cost is unknown (a model missing from the price table) are counted.
- Latency p50/p95 over answered cases: linear interpolation between order statistics
  (Hyndman & Fan 1996 definition 7, numpy's default `percentile` method).
- Cache-hit ratio: cache-read input tokens over all input tokens (uncached + cache writes +
  cache reads), the share of the prompt served from the cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from evals import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class ScorerResult:
    score: float | None
    passed: bool | None
    error: str = ""


@dataclass(frozen=True)
class CaseResult:
    """One case of a run as the summary needs it; `passed` is None when it has no verdict."""

    passed: bool | None
    answered: bool
    scores: Mapping[str, ScorerResult] = field(default_factory=dict)
    cost_micro_usd: int | None = None
    latency_ms: int | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)


def wilson_interval(successes: int, n: int) -> tuple[float, float] | None:
    if n == 0:
        return None
    return stats.wilson_interval(successes, n, confidence=CONFIDENCE)


def percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    import numpy

    return float(numpy.percentile(values, q, method="linear"))


def input_tokens(usage: Mapping[str, Any]) -> tuple[int, int]:
    """(all input tokens, cache-read input tokens) of one answer's usage."""
    read = int(usage.get("cache_read_input_tokens") or 0)
    total = int(usage.get("input_tokens") or 0) + int(usage.get("cache_creation_input_tokens") or 0) + read
    return total, read


def summarize(cases: Iterable[CaseResult]) -> dict[str, Any]:
    """The run summary, JSON-ready (stored on the run and returned by the API)."""
    cases = list(cases)
    judged = [case for case in cases if case.passed is not None]
    passed = sum(1 for case in judged if case.passed)
    answered = [case for case in cases if case.answered]
    costs = [case.cost_micro_usd for case in answered if case.cost_micro_usd is not None]
    latencies = [case.latency_ms for case in answered if case.latency_ms is not None]
    all_input = cache_read = 0
    for case in answered:
        total, read = input_tokens(case.usage)
        all_input += total
        cache_read += read
    interval = wilson_interval(passed, len(judged))
    return {
        "cases": len(cases),
        "answered": len(answered),
        "judged": len(judged),
        "passed": passed,
        "errors": len(cases) - len(judged),
        "pass_rate": passed / len(judged) if judged else None,
        "pass_rate_interval": list(interval) if interval else None,
        "scorers": _scorer_means(cases),
        "cost_micro_usd": sum(costs),
        "cost_per_case_micro_usd": sum(costs) / len(costs) if costs else None,
        "cost_unknown_cases": len(answered) - len(costs),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "cache_hit_ratio": cache_read / all_input if all_input else None,
    }


def _scorer_means(cases: list[CaseResult]) -> dict[str, dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for case in cases:
        for name, result in case.scores.items():
            entry = totals.setdefault(name, {"n": 0, "score_sum": 0.0, "passed": 0, "errors": 0})
            if result.error or result.score is None:
                entry["errors"] += 1
                continue
            entry["n"] += 1
            entry["score_sum"] += result.score
            entry["passed"] += bool(result.passed)
    return {
        name: {
            "mean_score": entry["score_sum"] / entry["n"] if entry["n"] else None,
            "passed": entry["passed"],
            "n": entry["n"],
            "errors": entry["errors"],
        }
        for name, entry in sorted(totals.items())
    }
