"""Cumulative per-arm aggregates of a rollout's stage, read from the rollups (never from raw
calls or scores, so a tick's cost does not grow with traffic): telemetry's per-minute Rollup
and RollupHistogram, evals' per-minute LiveScoreRollup, and the paired-replay rollups
(PairedReplayRollup), summed in SQL.

The canary arm is the candidate version in the `candidate` arm; the control arm is the
baseline version in the `control` band (client/flagstaff/engine/resolve.py labels both); an
experiment's arms are named by the experiment (`baseline` and its candidates' names). A
unit of the analysis is a call: the rollups count calls, not distinct users, so the
sample-ratio check compares calls per arm, which a sticky split keeps in the split's ratio.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Any, Protocol

from django.db.models import BigIntegerField, Count, Q, Sum

from evals.models import LiveScoreRollup
from rollouts.analysis import ArmAggregates, MetricAggregate
from rollouts.models import Guardrail, PairedReplayRollup, Rollout
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
# Cost per call, the continuous metric: n, sum and sum of squares over the calls with a known
# cost (an unknown model's calls are left out, not counted as free); errors cost what they cost
# (usually nothing) and count, as on the dashboards. The rollups keep exact integer sums of
# micro-USD and micro-USD²; the analysis gets dollars.
COST_SQ = "cost_sq_micro_usd2"
MICRO = 1_000_000
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


# Each arm's aggregates and its rollup counters summed, by arm name.
ArmReading = tuple[dict[str, ArmAggregates], dict[str, dict[str, int]]]


@dataclass(frozen=True)
class Window:
    """One flag × environment's arms to read (arm name -> the version it serves: a rollout's
    two, an experiment's up to four), the guardrails saying which metrics, from the minute of
    `since` to `until`."""

    flag_id: int
    environment_id: int
    arms: Mapping[str, int]
    guardrails: Sequence[MetricSource]
    since: datetime
    until: datetime

    @classmethod
    def of_rollout(
        cls, rollout: Rollout, guardrails: Iterable[Guardrail], since: datetime, until: datetime
    ) -> Window:
        arms = {CANARY: rollout.candidate.number, CONTROL: rollout.baseline.number}
        return cls(rollout.flag_id, rollout.environment_id, arms, list(guardrails), since, until)

    @property
    def key(self) -> tuple[int, int]:
        return (self.flag_id, self.environment_id)

    def rows(self, *, prefix: str = "") -> Q:
        """Its rows of a per-minute rollup keyed by flag, environment, version and arm."""
        since = self.since.replace(second=0, microsecond=0)
        arms = reduce(
            operator.or_,
            (Q(**{f"{prefix}arm": arm, f"{prefix}version": version}) for arm, version in self.arms.items()),
        )
        return arms & Q(
            **{
                f"{prefix}flag_id": self.flag_id,
                f"{prefix}environment_id": self.environment_id,
                f"{prefix}bucket__gte": since,
                f"{prefix}bucket__lt": self.until,
            }
        )


def _any_of(windows: Iterable[Window], *, prefix: str = "") -> Q:
    return reduce(operator.or_, (window.rows(prefix=prefix) for window in windows))


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
    window = Window.of_rollout(rollout, guardrails, since, until)
    return read_many_stage_aggregates([window])[window.key]


def read_many_stage_aggregates(windows: Sequence[Window]) -> dict[tuple[int, int], StageAggregates]:
    """`read_stage_aggregates` of many rollouts at once (windows from `Window.of_rollout`), by
    (flag id, environment id)."""
    return {
        key: StageAggregates(canary=aggregates[CANARY], control=aggregates[CONTROL], counters=counters)
        for key, (aggregates, counters) in read_many_arm_aggregates(windows).items()
    }


def read_arm_aggregates(
    *,
    environment_id: int,
    flag_id: int,
    arms: Mapping[str, int],
    guardrails: Iterable[MetricSource],
    since: datetime,
    until: datetime,
) -> ArmReading:
    """For each arm (name -> the version it serves): its aggregates, and its rollup counters
    summed, from the minute of `since` to `until`."""
    window = Window(flag_id, environment_id, dict(arms), list(guardrails), since, until)
    return read_many_arm_aggregates([window])[window.key]


def read_many_arm_aggregates(windows: Sequence[Window]) -> dict[tuple[int, int], ArmReading]:
    """`read_arm_aggregates` of many windows at once, by (flag id, environment id): one query
    per rollup table for them all, whatever their number (an analysis tick reads every due
    rollout this way). At most one window per flag and environment, as at most one rollout or
    experiment is active there."""
    keys = [window.key for window in windows]
    if len(set(keys)) != len(keys):
        raise ValueError("one window per flag and environment")
    if not windows:
        return {}
    counters: dict[tuple[int, int], dict[str, dict[str, int]]] = {
        window.key: {arm: dict.fromkeys(COUNTERS, 0) for arm in window.arms} for window in windows
    }
    # The sum of squares of a stage is unknown if one of its rows' is (written before the column
    # existed, raw calls gone): then its cost comparison is left out, never guessed.
    squares: dict[tuple[int, int], dict[str, int | None]] = {
        window.key: dict.fromkeys(window.arms, 0) for window in windows
    }
    sums = {name: Sum(name) for name in COUNTERS}
    unknown_rows = Count("pk", filter=Q(**{f"{COST_SQ}__isnull": True}))
    rows = (
        Rollup.objects.filter(_any_of(windows))
        .values("flag_id", "environment_id", "arm")
        .annotate(**sums, squares=Sum(COST_SQ, output_field=BigIntegerField()), unknown_rows=unknown_rows)
        .order_by()
    )
    for row in rows:
        key = (row["flag_id"], row["environment_id"])
        counters[key][row["arm"]] = {name: int(row[name] or 0) for name in COUNTERS}
        # PostgreSQL sums numeric exactly (a Decimal), SQLite as an integer (beyond 2^63 it keeps
        # a float); read without Django's decimal converter, which rounds to 15 digits on SQLite.
        squares[key][row["arm"]] = None if row["unknown_rows"] else int(row["squares"] or 0)
    for by_arm in counters.values():
        for totals in by_arm.values():
            totals["answered"] = totals["calls"] - totals["stop_none"]

    histograms: dict[tuple[int, int], dict[str, dict[str, dict[int, int]]]] = {
        window.key: {arm: defaultdict(dict) for arm in window.arms} for window in windows
    }
    wanted = {HISTOGRAMS[g.metric] for window in windows for g in window.guardrails if g.metric in HISTOGRAMS}
    if wanted:
        histogram_rows = (
            RollupHistogram.objects.filter(_any_of(windows, prefix="rollup__"), metric__in=wanted)
            .values("rollup__flag_id", "rollup__environment_id", "rollup__arm", "metric", "bucket")
            .annotate(total=Sum("n"))
            .order_by()
        )
        for row in histogram_rows:
            key = (row["rollup__flag_id"], row["rollup__environment_id"])
            histograms[key][row["rollup__arm"]][row["metric"]][int(row["bucket"])] = int(row["total"])

    scores: dict[tuple[int, int], dict[str, dict[str, dict[str, Any]]]] = {
        window.key: {arm: {} for arm in window.arms} for window in windows
    }
    scored = [
        (window, scorers)
        for window in windows
        if (scorers := {g.scorer for g in window.guardrails if g.metric == "live_pass_rate"})
    ]
    if scored:
        score_rows = (
            LiveScoreRollup.objects.filter(
                reduce(operator.or_, (window.rows() & Q(scorer__in=scorers) for window, scorers in scored))
            )
            .values("flag_id", "environment_id", "arm", "scorer")
            .annotate(n=Sum("n"), passed=Sum("passed"), errors=Sum("errors"))
            .order_by()
        )
        for row in score_rows:
            scores[(row["flag_id"], row["environment_id"])][row["arm"]][row["scorer"]] = row

    paired = _paired_rows(windows)
    return {
        window.key: _arm_reading(
            window,
            counters[window.key],
            squares[window.key],
            histograms[window.key],
            scores[window.key],
            paired.get(window.key, {}),
        )
        for window in windows
    }


def _paired_rows(windows: Sequence[Window]) -> dict[tuple[int, int], dict[str, dict[str, Any]]]:
    """Per window, per scorer: the paired replays' summed (n, Σd, Σd², errors) of its rollout's
    baseline → candidate in the window, one query for them all (rollouts/services/paired_replay.py
    writes them)."""
    paired = [
        window
        for window in windows
        if CANARY in window.arms and any(g.metric == "paired_pass_rate" for g in window.guardrails)
    ]
    if not paired:
        return {}
    rows = (
        PairedReplayRollup.objects.filter(
            reduce(
                operator.or_,
                (
                    Q(
                        flag_id=window.flag_id,
                        environment_id=window.environment_id,
                        candidate_version=window.arms[CANARY],
                        baseline_version=window.arms[CONTROL],
                        bucket__gte=window.since.replace(second=0, microsecond=0),
                        bucket__lt=window.until,
                    )
                    for window in paired
                ),
            )
        )
        .values("flag_id", "environment_id", "scorer")
        .annotate(n=Sum("n"), d_sum=Sum("d_sum"), d_sq_sum=Sum("d_sq_sum"), errors=Sum("errors"))
        .order_by()
    )
    found: dict[tuple[int, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        found[(row["flag_id"], row["environment_id"])][row["scorer"]] = row
    return found


def _arm_reading(
    window: Window,
    counters: dict[str, dict[str, int]],
    squares: dict[str, int | None],
    histograms: dict[str, dict[str, dict[int, int]]],
    scores: dict[str, dict[str, dict[str, Any]]],
    paired: dict[str, dict[str, Any]],
) -> ArmReading:
    def arm(name: str) -> ArmAggregates:
        metrics: dict[str, MetricAggregate] = {}
        for guardrail in window.guardrails:
            if guardrail.metric in RATES:
                events, trials = RATES[guardrail.metric]
                count = counters[name][events]
                metrics[guardrail.name] = MetricAggregate(
                    n=counters[name][trials], total=count, total_sq=count
                )
            elif guardrail.metric in HISTOGRAMS:
                histogram = histograms[name].get(HISTOGRAMS[guardrail.metric], {})
                metrics[guardrail.name] = MetricAggregate(n=sum(histogram.values()), histogram=histogram)
            elif guardrail.metric == "cost_per_call":
                known_squares = squares[name]
                if known_squares is not None:
                    metrics[guardrail.name] = MetricAggregate(
                        n=counters[name]["calls"] - counters[name]["cost_unknown_calls"],
                        total=counters[name]["cost_micro_usd"] / MICRO,
                        total_sq=known_squares / MICRO**2,
                    )
            elif guardrail.metric == "live_pass_rate":
                row = scores[name].get(guardrail.scorer)
                if row is not None:
                    judged = int(row["n"] or 0) - int(row["errors"] or 0)
                    passed = int(row["passed"] or 0)
                    metrics[guardrail.name] = MetricAggregate(
                        n=judged, total=passed, total_sq=passed, errors=int(row["errors"] or 0)
                    )
            elif guardrail.metric == "paired_pass_rate" and name == CANARY:
                # The pairs' differences, held by the canary arm (rollouts.analysis.Source).
                pairs = paired.get(guardrail.scorer)
                if pairs is not None:
                    metrics[guardrail.name] = MetricAggregate(
                        n=int(pairs["n"] or 0),
                        total=int(pairs["d_sum"] or 0),
                        total_sq=int(pairs["d_sq_sum"] or 0),
                        errors=int(pairs["errors"] or 0),
                    )
        return ArmAggregates(
            units=counters[name]["calls"], metrics=metrics, cache_hit_ratio=_cache_hit_ratio(counters[name])
        )

    return {name: arm(name) for name in window.arms}, counters
