"""Cumulative per-arm aggregates of a rollout's stage, read from the rollups (never from raw
calls or scores, so a tick's cost does not grow with traffic): telemetry's per-minute Rollup
and RollupHistogram, and evals' per-minute LiveScoreRollup, summed in SQL.

The canary arm is the candidate version in the `candidate` arm; the control arm is the
baseline version in the `control` band (client/flagstaff/engine/resolve.py labels both); an
experiment's arms are named by the experiment (`baseline` and its candidates' names). A
unit of the analysis is a call: the rollups count calls, not distinct users, so the
sample-ratio check compares calls per arm, which a sticky split keeps in the split's ratio.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from django.db.models import Q, Sum

from evals.models import LiveScoreRollup
from rollouts.analysis import ArmAggregates, MetricAggregate
from rollouts.models import Guardrail, Rollout
from telemetry.models.calls import Rollup, RollupHistogram

CANARY, CONTROL = "candidate", "control"
# Rollup columns summed per arm, by name.
COUNTERS = (
    "calls",
    "errors",
    "stop_none",
    "stop_max_tokens",
    "stop_refusal",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cost_micro_usd",
    "cost_unknown_calls",
)
# Quantile metric -> the rollup histogram it reads.
HISTOGRAMS = {"ttft_p95": RollupHistogram.Metric.TTFT, "latency_p95": RollupHistogram.Metric.LATENCY}
# Binary telemetry metric -> (events column, trials): the stop reasons count calls that ended
# with a stop reason (not errors).
RATES = {
    "api_error_rate": ("errors", "calls"),
    "max_tokens_rate": ("stop_max_tokens", "answered"),
    "refusal_rate": ("stop_refusal", "answered"),
}


class MetricSource(Protocol):
    """What a reader needs of a guardrail: its name, the metric it reads, and its scorer."""

    @property
    def name(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def scorer(self) -> str: ...


@dataclass(frozen=True)
class StageAggregates:
    canary: ArmAggregates
    control: ArmAggregates
    counters: dict[str, dict[str, int]]  # arm -> rollup counter -> sum, for the Decision's inputs


def _arm_filter(arms: Mapping[str, int], *, arm_field: str = "arm", version_field: str = "version") -> Q:
    match = Q(pk__in=[])
    for arm, version in arms.items():
        match |= Q(**{arm_field: arm, version_field: version})
    return match


def _cache_hit_ratio(counters: dict[str, int]) -> float | None:
    prompt = (
        counters["input_tokens"]
        + counters["cache_read_tokens"]
        + counters["cache_write_5m_tokens"]
        + counters["cache_write_1h_tokens"]
    )
    return counters["cache_read_tokens"] / prompt if prompt else None


def read_stage_aggregates(
    *, rollout: Rollout, guardrails: Iterable[Guardrail], since: datetime, until: datetime
) -> StageAggregates:
    """Each arm's cumulative counts, histograms and live scores from the minute of `since`
    (rollups are per minute) to `until`."""
    aggregates, counters = read_arm_aggregates(
        environment_id=rollout.environment_id,
        flag_id=rollout.flag_id,
        arms={CANARY: rollout.candidate.number, CONTROL: rollout.baseline.number},
        guardrails=guardrails,
        since=since,
        until=until,
    )
    return StageAggregates(canary=aggregates[CANARY], control=aggregates[CONTROL], counters=counters)


def read_arm_aggregates(
    *,
    environment_id: int,
    flag_id: int,
    arms: Mapping[str, int],
    guardrails: Iterable[MetricSource],
    since: datetime,
    until: datetime,
) -> tuple[dict[str, ArmAggregates], dict[str, dict[str, int]]]:
    """For each arm (name -> the version it serves; a rollout's two, an experiment's up to
    four): its aggregates, and its rollup counters summed, from the minute of `since` to `until`.
    A handful of grouped queries whatever the number of arms."""
    guardrails = list(guardrails)
    since = since.replace(second=0, microsecond=0)
    rollups = Rollup.objects.filter(
        _arm_filter(arms),
        environment_id=environment_id,
        flag_id=flag_id,
        bucket__gte=since,
        bucket__lt=until,
    )
    counters: dict[str, dict[str, int]] = {arm: dict.fromkeys(COUNTERS, 0) for arm in arms}
    for row in rollups.values("arm").annotate(**{name: Sum(name) for name in COUNTERS}):
        counters[row["arm"]] = {name: int(row[name] or 0) for name in COUNTERS}
    for totals in counters.values():
        totals["answered"] = totals["calls"] - totals["stop_none"]

    histograms: dict[str, dict[str, dict[int, int]]] = {arm: defaultdict(dict) for arm in arms}
    wanted = {HISTOGRAMS[g.metric] for g in guardrails if g.metric in HISTOGRAMS}
    if wanted:
        histogram_rows = (
            RollupHistogram.objects.filter(rollup__in=rollups, metric__in=wanted)
            .values("rollup__arm", "metric", "bucket")
            .annotate(total=Sum("n"))
        )
        for row in histogram_rows:
            histograms[row["rollup__arm"]][row["metric"]][int(row["bucket"])] = int(row["total"])

    scores: dict[str, dict[str, dict[str, Any]]] = {arm: {} for arm in arms}
    scorers = {g.scorer for g in guardrails if g.metric == "live_pass_rate"}
    if scorers:
        score_rows = (
            LiveScoreRollup.objects.filter(
                _arm_filter(arms),
                environment_id=environment_id,
                flag_id=flag_id,
                scorer__in=scorers,
                bucket__gte=since,
                bucket__lt=until,
            )
            .values("arm", "scorer")
            .annotate(n=Sum("n"), passed=Sum("passed"), errors=Sum("errors"))
        )
        for row in score_rows:
            scores[row["arm"]][row["scorer"]] = row

    def arm(name: str) -> ArmAggregates:
        metrics: dict[str, MetricAggregate] = {}
        for guardrail in guardrails:
            if guardrail.metric in RATES:
                events, trials = RATES[guardrail.metric]
                count = counters[name][events]
                metrics[guardrail.name] = MetricAggregate(
                    n=counters[name][trials], total=count, total_sq=count
                )
            elif guardrail.metric in HISTOGRAMS:
                histogram = histograms[name].get(HISTOGRAMS[guardrail.metric], {})
                metrics[guardrail.name] = MetricAggregate(n=sum(histogram.values()), histogram=histogram)
            elif guardrail.metric == "live_pass_rate":
                row = scores[name].get(guardrail.scorer)
                if row is not None:
                    judged = int(row["n"] or 0) - int(row["errors"] or 0)
                    passed = int(row["passed"] or 0)
                    metrics[guardrail.name] = MetricAggregate(
                        n=judged, total=passed, total_sq=passed, errors=int(row["errors"] or 0)
                    )
        return ArmAggregates(
            units=counters[name]["calls"], metrics=metrics, cache_hit_ratio=_cache_hit_ratio(counters[name])
        )

    return {name: arm(name) for name in arms}, counters
