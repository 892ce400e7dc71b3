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

from django.db.models import Q, Sum

from rollouts import aggregate_checkpoints as checkpoints
from rollouts import rollup_sums
from rollouts.analysis import ArmAggregates, MetricAggregate
from rollouts.models import Guardrail, PairedReplayRollup, Rollout
from telemetry.models.calls import RollupHistogram

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

    @property
    def first_minute(self) -> datetime:
        return self.since.replace(second=0, microsecond=0)

    def rows(self, *, prefix: str = "") -> Q:
        """Its rows of a per-minute rollup keyed by flag, environment, version and arm."""
        since = self.first_minute
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
    experiment is active there.

    Each window's sums of its settled minutes come from its checkpoint, and only the rollup rows
    after it are read; the rows of the minutes that settled since are added to the checkpoint
    (aggregate_checkpoints.py), so the cost follows the minutes read, not the stage's age."""
    keys = [window.key for window in windows]
    if len(set(keys)) != len(keys):
        raise ValueError("one window per flag and environment")
    if not windows:
        return {}
    settle = checkpoints.settled_before(min(window.until for window in windows))
    identities = {window.key: _identity(window) for window in windows}
    kept = checkpoints.load(list(identities.values()), min(window.until for window in windows))
    # Per window, the first minute to read: the end of its checkpoint, or its first minute.
    reads = [
        _Read(window, kept[window.key].settled_until if window.key in kept else identities[window.key].since)
        for window in windows
    ]
    # Per window, the sums of the rows that are settled now, and of the rows that are not.
    settled = {window.key: checkpoints.Sums.empty(window.arms, COUNTERS) for window in windows}
    recent = {window.key: checkpoints.Sums.empty(window.arms, COUNTERS) for window in windows}

    def part(key: tuple[int, int], is_settled: int) -> checkpoints.Sums:
        return settled[key] if is_settled else recent[key]

    spans = [read.span() for read in reads]
    for flag_id, environment_id, arm, is_settled, *values in rollup_sums.counter_rows(
        spans, settle, COUNTERS, COST_SQ
    ):
        *sums, squares, unknown_rows = values
        # The sum of squares of a stage is unknown if one of its rows' is (written before the
        # column existed, raw calls gone): then its cost comparison is left out, never guessed.
        # PostgreSQL sums numeric exactly (a Decimal), SQLite as an integer.
        part((flag_id, environment_id), is_settled).add_counters(
            arm,
            {name: int(value or 0) for name, value in zip(COUNTERS, sums, strict=True)},
            None if unknown_rows else int(squares or 0),
        )

    metrics = {read.window.key: _histogram_metrics(read.window) for read in reads}
    wanted = sorted({metric for names in metrics.values() for metric in names})
    if wanted:
        histogram_spans = [read.span() for read in reads if metrics[read.window.key]]
        for flag_id, environment_id, arm, is_settled, metric, bucket, n in rollup_sums.histogram_rows(
            histogram_spans, settle, wanted
        ):
            key = (flag_id, environment_id)
            if metric in metrics[key]:
                part(key, is_settled).add_histogram(arm, metric, int(bucket), int(n))

    scorers = {read.window.key: _scorers(read.window) for read in reads}
    scored = sorted({scorer for names in scorers.values() for scorer in names})
    if scored:
        score_spans = [read.span() for read in reads if scorers[read.window.key]]
        for flag_id, environment_id, arm, is_settled, scorer, *counts in rollup_sums.score_rows(
            score_spans, settle, scored
        ):
            key = (flag_id, environment_id)
            if scorer in scorers[key]:
                totals = dict(
                    zip(checkpoints.SCORE_FIELDS, (int(count or 0) for count in counts), strict=True)
                )
                part(key, is_settled).add_scores(arm, scorer, totals)

    paired = _paired_rows(windows)
    readings: dict[tuple[int, int], ArmReading] = {}
    advanced: list[tuple[checkpoints.Identity, checkpoints.Checkpoint]] = []
    for read in reads:
        key = read.window.key
        base = kept[key].sums if key in kept else checkpoints.Sums.empty(read.window.arms, COUNTERS)
        base.add(settled[key])
        if settle > read.since:
            advanced.append((identities[key], checkpoints.Checkpoint(settle, base.copy())))
        base.add(recent[key])
        readings[key] = _arm_reading(read.window, base, paired.get(key, {}))
    checkpoints.save(advanced)
    return readings


@dataclass(frozen=True)
class _Read:
    """A window's rows from `since` (its checkpoint's end, or its first minute) on."""

    window: Window
    since: datetime

    def span(self) -> rollup_sums.Span:
        window = self.window
        return rollup_sums.Span(window.flag_id, window.environment_id, window.arms, self.since, window.until)


def _histogram_metrics(window: Window) -> list[str]:
    return sorted({HISTOGRAMS[g.metric] for g in window.guardrails if g.metric in HISTOGRAMS})


def _scorers(window: Window) -> list[str]:
    return sorted({g.scorer for g in window.guardrails if g.metric == "live_pass_rate"})


def _identity(window: Window) -> checkpoints.Identity:
    sources = [f"histogram:{metric}" for metric in _histogram_metrics(window)]
    sources += [f"scorer:{scorer}" for scorer in _scorers(window)]
    return checkpoints.Identity(
        window.flag_id, window.environment_id, window.first_minute, dict(window.arms), sources
    )


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
                        bucket__gte=window.first_minute,
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
    window: Window, sums: checkpoints.Sums, paired: Mapping[str, Mapping[str, Any]]
) -> ArmReading:
    counters, squares, histograms, scores = sums.counters, sums.squares, sums.histograms, sums.scores
    for totals in counters.values():
        totals["answered"] = totals["calls"] - totals["stop_none"]

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
