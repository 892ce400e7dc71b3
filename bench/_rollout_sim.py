"""A simulated rollout, tick by tick, driving the real `rollouts.analysis.decide`.

Traffic model (one flag in one environment; every figure is a constant below):

- CALLS_PER_MINUTE = 20,000 calls reach the flag (a scenario may set another rate: the traffic
  table of the error-rate spike, `error_spike`); one tick = 60 s of simulated clock. A call is
  one unit (a one-call conversation), so units and calls coincide; real traffic with several
  calls per unit has correlated calls, which this model does not have (see docs/analysis.md).
- Stages 1 % and 10 % are analysed; promotion out of the 10 % stage is the move to 100 %.
  Each stage has a control band of the same size (rollout-analysis.md §8.3), so each arm gets
  Poisson(CALLS_PER_MINUTE × weight) calls per tick: about 200 at 1 %, 2,000 at 10 %.
- Judged samples: the live scorer samples 100 % of both arms at 1 % and 10 % at 10 %, so about
  200 judged samples per arm per tick at both stages; 2 % of judge attempts are scorer errors,
  counted apart.
- Control behaviour: live pass rate 85 %, API error rate 1 %, max_tokens stop rate 3 %, refusal
  rate 1 %; TTFT log-normal (median 400 ms, σ 0.5), total latency log-normal (median 2,500 ms,
  σ 0.6), cost per call log-normal (median $0.004, σ 0.8); prompt-cache hit ratio 0.7.
- A cold candidate cache starts at hit ratio 0 and reaches the control's in about 12 minutes;
  while it trails, each missed hit makes a call up to 60 % costlier and 40 % slower.

- Paired replay (the `paired_*` scenarios): REPLAYS_PER_TICK = 100 of the control arm's judged
  samples per tick are replayed through the candidate and both answers judged; each pair's
  d = candidate − control passed is −1 with probability (control − candidate pass rate) +
  `paired_wins` and +1 with probability `paired_wins` (the inputs the candidate passes and the
  control failed, which a same-model re-run also shows: answers are not deterministic), else 0.
  The policy is then `PAIRED_POLICY`: the live pass rate's guardrail replaced by the paired one,
  with the same margin, critical as the product's default paired guardrail is
  (`rollouts.plans.paired_guardrail`; `PAIRED_NON_CRITICAL_POLICY` for the contrast), and judged
  samples per arm are the pairs.

Each stage: minimum 15 minutes, maximum 120 minutes, at least 100 units and 100 judged samples
per arm; the policy is `POLICY` (margins in its definition). Aggregates restart at each stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from rollouts.analysis import (
    Action,
    ArmAggregates,
    Decision,
    Direction,
    Guardrail,
    Kind,
    MetricAggregate,
    OnInconclusive,
    Policy,
    Source,
    Stage,
    TickState,
    decide,
)
from telemetry import histograms

CALLS_PER_MINUTE = 20_000
TICK_SECONDS = 60.0
JUDGED_RATE = {0.01: 1.0, 0.10: 0.10}
SCORER_ERROR_RATE = 0.02
CONTROL_CACHE_HIT = 0.7
WARMUP_MINUTES = 12.0
REPLAYS_PER_TICK = 100
PAIRED = "paired_pass_rate"

POLICY = Policy(
    guardrails=(
        Guardrail(
            name="live_pass_rate",
            label="live pass rate",
            kind=Kind.BINARY,
            direction=Direction.DECREASE_IS_BAD,
            margin=0.02,
            source=Source.LIVE_SCORE,
        ),
        Guardrail(
            name="api_error_rate",
            label="API error rate",
            kind=Kind.BINARY,
            direction=Direction.INCREASE_IS_BAD,
            margin=0.005,
            critical=True,
        ),
        Guardrail(
            name="max_tokens_rate",
            label="max_tokens stop rate",
            kind=Kind.BINARY,
            direction=Direction.INCREASE_IS_BAD,
            margin=0.01,
        ),
        Guardrail(
            name="refusal_rate",
            label="refusal stop rate",
            kind=Kind.BINARY,
            direction=Direction.INCREASE_IS_BAD,
            margin=0.005,
        ),
        Guardrail(
            name="ttft_p95",
            label="TTFT p95",
            kind=Kind.QUANTILE,
            direction=Direction.INCREASE_IS_BAD,
            margin=0.25,
            relative_margin=True,
            cache_sensitive=True,
            unit="ms",
        ),
        Guardrail(
            name="total_p95",
            label="total latency p95",
            kind=Kind.QUANTILE,
            direction=Direction.INCREASE_IS_BAD,
            margin=0.25,
            relative_margin=True,
            cache_sensitive=True,
            unit="ms",
        ),
        Guardrail(
            name="cost_per_call",
            label="cost per call",
            kind=Kind.CONTINUOUS,
            direction=Direction.INCREASE_IS_BAD,
            margin=0.05,
            relative_margin=True,
            cache_sensitive=True,
            unit="$",
        ),
    ),
)

PAIRED_GUARDRAIL = Guardrail(
    name=PAIRED,
    label="paired pass rate",
    kind=Kind.CONTINUOUS,
    direction=Direction.DECREASE_IS_BAD,
    margin=0.02,
    source=Source.PAIRED_REPLAY,
    critical=True,  # as rollouts.plans.paired_guardrail makes it
)
PAIRED_POLICY = replace(
    POLICY,
    guardrails=(PAIRED_GUARDRAIL, *(g for g in POLICY.guardrails if g.name != "live_pass_rate")),
)
# The contrast: the paired guardrail in the Holm family, acting on 2 consecutive ticks.
PAIRED_NON_CRITICAL_POLICY = replace(
    POLICY,
    guardrails=(
        replace(PAIRED_GUARDRAIL, critical=False),
        *(g for g in POLICY.guardrails if g.name != "live_pass_rate"),
    ),
)


STAGES = tuple(
    Stage(
        weight=weight,
        min_duration_seconds=15 * 60,
        max_duration_seconds=120 * 60,
        min_units_per_arm=100,
        min_judged_per_arm=100,
        on_inconclusive=OnInconclusive.PAUSE,
    )
    for weight in (0.01, 0.10)
)


@dataclass(frozen=True)
class ArmBehaviour:
    """What one arm's calls look like; the candidate is the control with some of these changed."""

    pass_rate: float = 0.85
    error_rate: float = 0.01
    max_tokens_rate: float = 0.03
    refusal_rate: float = 0.01
    ttft_median_ms: float = 400.0
    total_median_ms: float = 2500.0
    cost_median: float = 0.004
    cold_cache: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    candidate: ArmBehaviour = ArmBehaviour()
    control: ArmBehaviour = ArmBehaviour()
    canary_share: float = 0.5  # of the two bands' units; 0.52 is a 52/48 sample-ratio mismatch
    canary_traffic: bool = True
    control_traffic: bool = True
    report_cache_ratio: bool = True
    candidate_after_first_stage: ArmBehaviour | None = None  # a regression that starts at 10 %
    paired_wins: float | None = None  # paired replay on: the share of inputs only the candidate passes
    paired_critical: bool = True  # False: the paired guardrail is non-critical (Holm, 2 ticks)
    calls_per_minute: int = CALLS_PER_MINUTE  # on the flag; the traffic table varies it


@dataclass
class _Arm:
    units: int = 0
    counts: dict[str, list[float]] = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    cache_hits: float = 0.0

    def aggregates(self) -> ArmAggregates:
        metrics = {
            name: MetricAggregate(n=int(n), total=total, total_sq=total_sq, errors=int(errors))
            for name, (n, total, total_sq, errors) in self.counts.items()
        }
        for name, counts in self.histograms.items():
            nonzero = np.nonzero(counts)[0]
            metrics[name] = MetricAggregate(histogram={int(b): int(counts[b]) for b in nonzero})
        ratio = self.cache_hits / self.units if self.units else None
        return ArmAggregates(units=self.units, metrics=metrics, cache_hit_ratio=ratio)


_HISTOGRAM_SIZE = 160  # bucket 1 + 8·log2(v); 2**(160/8) ms is far beyond any latency here


def _bucket_counts(values: np.ndarray) -> np.ndarray:
    buckets = np.where(
        values < 1.0, 0, 1 + np.floor(histograms.SUBBUCKETS * np.log2(np.maximum(values, 1.0)))
    )
    return np.bincount(np.minimum(buckets, _HISTOGRAM_SIZE - 1).astype(np.int64), minlength=_HISTOGRAM_SIZE)


def _add(arm: _Arm, name: str, n: int, total: float, total_sq: float, errors: int = 0) -> None:
    current = arm.counts.setdefault(name, [0, 0.0, 0.0, 0])
    current[0] += n
    current[1] += total
    current[2] += total_sq
    current[3] += errors


def _tick(
    rng: np.random.Generator,
    arm: _Arm,
    behaviour: ArmBehaviour,
    calls: int,
    judged_rate: float,
    minute: float,
) -> None:
    arm.units += calls
    cold_gap = 0.0
    if behaviour.cold_cache:
        cold_gap = CONTROL_CACHE_HIT * max(0.0, 1.0 - minute / WARMUP_MINUTES)
    hit_ratio = CONTROL_CACHE_HIT - cold_gap
    arm.cache_hits += calls * hit_ratio
    slow = 1.0 + 0.4 * cold_gap / CONTROL_CACHE_HIT
    dear = 1.0 + 0.6 * cold_gap / CONTROL_CACHE_HIT
    attempts = int(rng.binomial(calls, judged_rate))
    scorer_errors = int(rng.binomial(attempts, SCORER_ERROR_RATE))
    judged = attempts - scorer_errors
    passes = float(rng.binomial(judged, behaviour.pass_rate))
    _add(arm, "live_pass_rate", judged, passes, passes, scorer_errors)
    for name, rate in (
        ("api_error_rate", behaviour.error_rate),
        ("max_tokens_rate", behaviour.max_tokens_rate),
        ("refusal_rate", behaviour.refusal_rate),
    ):
        events = float(rng.binomial(calls, rate))
        _add(arm, name, calls, events, events)
    ttft = rng.lognormal(math.log(behaviour.ttft_median_ms * slow), 0.5, calls)
    total = rng.lognormal(math.log(behaviour.total_median_ms * slow), 0.6, calls)
    cost = rng.lognormal(math.log(behaviour.cost_median * dear), 0.8, calls)
    for name, values in (("ttft_p95", ttft), ("total_p95", total)):
        arm.histograms[name] = arm.histograms.get(name, np.zeros(_HISTOGRAM_SIZE, np.int64)) + _bucket_counts(
            values
        )
    _add(arm, "cost_per_call", calls, float(cost.sum()), float((cost * cost).sum()))


def _replay(
    rng: np.random.Generator, canary: _Arm, candidate: ArmBehaviour, control: ArmBehaviour, wins: float
) -> None:
    """One tick of paired replay: REPLAYS_PER_TICK pairs' differences, held by the canary arm."""
    losses = max(0.0, control.pass_rate - candidate.pass_rate) + wins
    drawn = rng.multinomial(REPLAYS_PER_TICK, [losses, wins, 1.0 - losses - wins])
    _add(canary, PAIRED, REPLAYS_PER_TICK, float(drawn[1] - drawn[0]), float(drawn[0] + drawn[1]))


@dataclass(frozen=True)
class StageOutcome:
    weight: float
    decision: Decision
    ticks: int
    judged_per_arm: int  # the smaller arm's judged samples at the decision


@dataclass(frozen=True)
class RunOutcome:
    final: Action  # PROMOTE after the last stage, else the action that ended the run
    stages: tuple[StageOutcome, ...]

    @property
    def last(self) -> StageOutcome:
        return self.stages[-1]

    @property
    def total_ticks(self) -> int:
        return sum(stage.ticks for stage in self.stages)


_ENDING = {Action.PROMOTE, Action.ROLLBACK, Action.PAUSE, Action.INCONCLUSIVE}


def run(
    scenario: Scenario,
    rng: np.random.Generator,
    *,
    decide_fn: Callable[..., Decision] = decide,
    policy: Policy = POLICY,
    stages: tuple[Stage, ...] = STAGES,
) -> RunOutcome:
    """One rollout through the analysed stages; stops at the first decision that ends a stage
    other than a promotion, as the state machine would (rollback, pause, inconclusive → pause)."""
    outcomes: list[StageOutcome] = []
    paired = scenario.paired_wins is not None
    if paired:
        policy = PAIRED_POLICY if scenario.paired_critical else PAIRED_NON_CRITICAL_POLICY
    minute = 0.0  # since the rollout started: the cold cache warms across stages
    for index, stage in enumerate(stages):
        candidate = scenario.candidate
        if index > 0 and scenario.candidate_after_first_stage is not None:
            candidate = scenario.candidate_after_first_stage
        canary, control = _Arm(), _Arm()
        state = TickState()
        ticks = 0
        while True:
            ticks += 1
            minute += TICK_SECONDS / 60
            both = int(rng.poisson(2 * scenario.calls_per_minute * stage.weight * TICK_SECONDS / 60))
            canary_calls = int(rng.binomial(both, scenario.canary_share))
            judged_rate = JUDGED_RATE[stage.weight]
            if scenario.canary_traffic:
                _tick(rng, canary, candidate, canary_calls, judged_rate, minute)
            if scenario.control_traffic:
                _tick(rng, control, scenario.control, both - canary_calls, judged_rate, minute)
            if paired and scenario.canary_traffic and scenario.control_traffic:
                _replay(rng, canary, candidate, scenario.control, scenario.paired_wins or 0.0)
            canary_agg, control_agg = canary.aggregates(), control.aggregates()
            if not scenario.report_cache_ratio:
                canary_agg = ArmAggregates(units=canary_agg.units, metrics=canary_agg.metrics)
                control_agg = ArmAggregates(units=control_agg.units, metrics=control_agg.metrics)
            decision = decide_fn(
                policy=policy,
                stage=stage,
                canary=canary_agg,
                control=control_agg,
                elapsed_seconds=ticks * TICK_SECONDS,
                previous=state,
            )
            state = decision.state
            if decision.action in _ENDING:
                judged = (
                    canary_agg.metric(PAIRED).n
                    if paired
                    else min(canary_agg.metric("live_pass_rate").n, control_agg.metric("live_pass_rate").n)
                )
                outcomes.append(StageOutcome(stage.weight, decision, ticks, judged))
                break
        if decision.action is not Action.PROMOTE:
            return RunOutcome(final=decision.action, stages=tuple(outcomes))
    return RunOutcome(final=Action.PROMOTE, stages=tuple(outcomes))


SCENARIOS = {
    "aa": Scenario("A/A (identical arms)"),
    "drop5": Scenario("live pass rate 85 → 80 %", candidate=ArmBehaviour(pass_rate=0.80)),
    "drop10": Scenario("live pass rate 85 → 75 %", candidate=ArmBehaviour(pass_rate=0.75)),
    "errors2x": Scenario("API error rate 1 → 2 %", candidate=ArmBehaviour(error_rate=0.02)),
    "errors2x_at_10": Scenario(
        "API error rate 1 → 2 % from the 10 % stage",
        candidate_after_first_stage=ArmBehaviour(error_rate=0.02),
    ),
    "no_data": Scenario("no data", canary_traffic=False, control_traffic=False),
    "canary_only": Scenario("canary arm only", control_traffic=False),
    "control_only": Scenario("control arm only", canary_traffic=False),
    "srm": Scenario("SRM 52/48", canary_share=0.52),
    "cold_cache": Scenario("cold cache only", candidate=ArmBehaviour(cold_cache=True)),
    "paired_aa": Scenario("paired replay, A/A (3 % of pairs differ each way)", paired_wins=0.03),
    "paired_drop10": Scenario(
        "paired replay, 85 → 75 % (3 % wins)", candidate=ArmBehaviour(pass_rate=0.75), paired_wins=0.03
    ),
    "paired_drop10_no_wins": Scenario(
        "paired replay, 85 → 75 % (no wins)", candidate=ArmBehaviour(pass_rate=0.75), paired_wins=0.0
    ),
    "paired_aa_non_critical": Scenario(
        "paired replay, A/A, non-critical guardrail", paired_wins=0.03, paired_critical=False
    ),
    "paired_drop10_non_critical": Scenario(
        "paired replay, 85 → 75 % (3 % wins), non-critical",
        candidate=ArmBehaviour(pass_rate=0.75),
        paired_wins=0.03,
        paired_critical=False,
    ),
    "paired_drop10_no_wins_non_critical": Scenario(
        "paired replay, 85 → 75 % (no wins), non-critical",
        candidate=ArmBehaviour(pass_rate=0.75),
        paired_wins=0.0,
        paired_critical=False,
    ),
    "cold_cache_no_ratio": Scenario(
        "cold cache, hit ratio not reported",
        candidate=ArmBehaviour(cold_cache=True),
        report_cache_ratio=False,
    ),
}


def error_spike(calls_per_minute: int, *, from_first_stage: bool) -> Scenario:
    """The API error rate doubling (1 → 2 %) at another traffic rate, from the first tick of the
    1 % stage or of the 10 % stage: the rows of the bench's traffic table."""
    where = "1 %" if from_first_stage else "10 %"
    doubled = ArmBehaviour(error_rate=0.02)
    return Scenario(
        f"API error rate 1 → 2 % from the {where} stage at {calls_per_minute:,} calls/min",
        candidate=doubled if from_first_stage else ArmBehaviour(),
        candidate_after_first_stage=None if from_first_stage else doubled,
        calls_per_minute=calls_per_minute,
    )
