"""The per-tick decision and the experiment conclusion, on hand-made aggregates."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as scipy_stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from rollouts.analysis import (
    Action,
    ArmAggregates,
    Direction,
    Guardrail,
    Kind,
    MetricAggregate,
    MetricResult,
    MetricStatus,
    Policy,
    Reason,
    Source,
    Stage,
    TickState,
    conclude_experiment,
    decide,
)
from telemetry import histograms

PASS_RATE = Guardrail(
    name="live_pass_rate",
    label="live pass rate",
    kind=Kind.BINARY,
    direction=Direction.DECREASE_IS_BAD,
    margin=0.02,
    source=Source.LIVE_SCORE,
)
ERRORS = Guardrail(
    name="api_error_rate",
    label="API error rate",
    kind=Kind.BINARY,
    direction=Direction.INCREASE_IS_BAD,
    margin=0.005,
    critical=True,
)
COST = Guardrail(
    name="cost_per_call",
    label="cost per call",
    kind=Kind.CONTINUOUS,
    direction=Direction.INCREASE_IS_BAD,
    margin=0.05,
    relative_margin=True,
    cache_sensitive=True,
    unit="$",
)
LATENCY = Guardrail(
    name="total_p95",
    label="total latency p95",
    kind=Kind.QUANTILE,
    direction=Direction.INCREASE_IS_BAD,
    margin=0.25,
    relative_margin=True,
    cache_sensitive=True,
    unit="ms",
)
POLICY = Policy(guardrails=(PASS_RATE, ERRORS, COST, LATENCY))
STAGE = Stage(
    weight=0.01,
    min_duration_seconds=900,
    max_duration_seconds=7200,
    min_units_per_arm=100,
    min_judged_per_arm=100,
)


def binary(n: int, rate: float, errors: int = 0) -> MetricAggregate:
    events = round(n * rate)
    return MetricAggregate(n=n, total=events, total_sq=events, errors=errors)


def cost(n: int, mean: float, sd: float) -> MetricAggregate:
    return MetricAggregate(n=n, total=n * mean, total_sq=(n - 1) * sd * sd + n * mean * mean)


def latency(n: int, median_ms: float, seed: int) -> MetricAggregate:
    counts: dict[int, int] = {}
    for value in np.random.default_rng(seed).lognormal(math.log(median_ms), 0.3, n):
        bucket = histograms.bucket_of(float(value))
        counts[bucket] = counts.get(bucket, 0) + 1
    return MetricAggregate(histogram=counts)


def arm(
    *,
    units: int = 40_000,
    judged: int = 20_000,
    pass_rate: float = 0.85,
    error_rate: float = 0.01,
    cost_mean: float = 0.004,
    median_ms: float = 2500.0,
    seed: int = 1,
    scorer_errors: int = 0,
    cache_hit_ratio: float | None = None,
) -> ArmAggregates:
    return ArmAggregates(
        units=units,
        metrics={
            "live_pass_rate": binary(judged, pass_rate, scorer_errors),
            "api_error_rate": binary(units, error_rate),
            "cost_per_call": cost(units, cost_mean, 0.002),
            "total_p95": latency(min(units, 20_000), median_ms, seed),
        },
        cache_hit_ratio=cache_hit_ratio,
    )


def test_decide__identical_arms_after_min_duration__promotes_non_inferior() -> None:
    decision = decide(
        policy=POLICY, stage=STAGE, canary=arm(seed=1), control=arm(seed=2), elapsed_seconds=1800
    )
    assert decision.action is Action.PROMOTE
    assert decision.reason is Reason.NON_INFERIOR
    assert all(m.status is MetricStatus.NON_INFERIOR for m in decision.metrics)
    assert decision.explanation.startswith("promoted: all 4 acting guardrails shown non-inferior")


def test_decide_and_conclude__one_acting_guardrail__said_in_the_singular() -> None:
    policy = Policy(guardrails=(ERRORS,))

    decision = decide(
        policy=policy, stage=STAGE, canary=arm(seed=1), control=arm(seed=2), elapsed_seconds=1800
    )
    conclusion = conclude_experiment(
        policy=policy,
        baseline=arm(seed=1),
        arms={"haiku": arm(cost_mean=0.0015, seed=2)},
        weights={"baseline": 1, "haiku": 1},
        cost_metric="cost_per_call",
    )

    assert decision.explanation.startswith("promoted: the one acting guardrail shown non-inferior")
    assert "; non-inferior on the one acting guardrail" in conclusion.evidence


def test_decide__identical_arms_before_min_duration__holds() -> None:
    decision = decide(
        policy=POLICY, stage=STAGE, canary=arm(seed=1), control=arm(seed=2), elapsed_seconds=600
    )
    assert decision.action is Action.HOLD
    assert decision.reason is Reason.MIN_DURATION_NOT_MET


def test_decide__sample_ratio_52_48__pauses_with_health_check_failed() -> None:
    decision = decide(
        policy=POLICY,
        stage=STAGE,
        canary=arm(units=10_400, pass_rate=0.70),
        control=arm(units=9_600),
        elapsed_seconds=1800,
    )
    assert decision.action is Action.PAUSE
    assert decision.reason is Reason.HEALTH_CHECK_FAILED
    assert decision.srm_p_value is not None
    assert decision.srm_p_value < 0.001


def test_decide__sample_ratio_mismatch_and_critical_regression__rolls_back_saying_so() -> None:
    decision = decide(
        policy=POLICY,
        stage=STAGE,
        canary=arm(units=10_400, error_rate=0.04),
        control=arm(units=9_600),
        elapsed_seconds=60,
    )
    assert decision.action is Action.ROLLBACK
    assert decision.reason is Reason.CRITICAL_REGRESSION
    assert decision.srm_p_value is not None
    assert decision.srm_p_value < 0.001
    assert decision.explanation.startswith("rolled back: API error rate 4.0 % vs control 1.0 %")
    assert "despite a sample-ratio mismatch, 10400 canary vs 9600 control units" in decision.explanation


def test_decide__sample_ratio_mismatch_and_critical_regression_below_min_units__pauses() -> None:
    decision = decide(
        policy=POLICY,
        stage=STAGE,
        canary=arm(units=95, judged=95, error_rate=0.5),
        control=arm(units=20, judged=20),
        elapsed_seconds=60,
    )
    assert decision.action is Action.PAUSE
    assert decision.reason is Reason.HEALTH_CHECK_FAILED


def test_decide__mismatch_the_chi_square_alone_sees__holds_then_ends_inconclusive_never_promotes() -> None:
    # 5,200 vs 4,800: chi-square p = 6e-5, the sequential test's p = 0.004 (not yet 0.001).
    canary, control = arm(units=5_200), arm(units=4_800)
    healthy = decide(policy=POLICY, stage=STAGE, canary=arm(), control=arm(), elapsed_seconds=1800)
    held = decide(policy=POLICY, stage=STAGE, canary=canary, control=control, elapsed_seconds=1800)
    ended = decide(policy=POLICY, stage=STAGE, canary=canary, control=control, elapsed_seconds=7200)
    assert healthy.action is Action.PROMOTE
    assert (held.action, held.reason) == (Action.HOLD, Reason.SRM_SUSPECTED)
    assert held.srm_chi_square_p_value == pytest.approx(6.334e-5, rel=1e-3)
    assert held.srm_p_value == pytest.approx(0.003648, rel=1e-3)
    assert held.explanation == (
        "held: the split looks off at this tick, 5200 canary vs 4800 control units against an "
        "expected 1:1 split (chi-square p = 6.3e-05 < 0.001; the sequential test that pauses has "
        "p = 0.0036), so nothing is promoted on it"
    )
    assert (ended.action, ended.reason) == (Action.INCONCLUSIVE, Reason.SRM_SUSPECTED)


def test_decide__mismatch_the_chi_square_alone_sees_and_critical_regression__rolls_back() -> None:
    decision = decide(
        policy=POLICY,
        stage=STAGE,
        canary=arm(units=5_200, error_rate=0.04),
        control=arm(units=4_800),
        elapsed_seconds=60,
    )
    assert (decision.action, decision.reason) == (Action.ROLLBACK, Reason.CRITICAL_REGRESSION)


def test_decide__no_data__extends_then_ends_inconclusive() -> None:
    empty = ArmAggregates()
    early = decide(policy=POLICY, stage=STAGE, canary=empty, control=empty, elapsed_seconds=600)
    late = decide(policy=POLICY, stage=STAGE, canary=empty, control=empty, elapsed_seconds=7200)
    assert (early.action, early.reason) == (Action.EXTEND, Reason.NO_DATA)
    assert (late.action, late.reason) == (Action.INCONCLUSIVE, Reason.NO_DATA)


def test_decide__judged_samples_missing__never_promotes() -> None:
    no_scores = ArmAggregates(units=40_000, metrics={**arm().metrics, "live_pass_rate": MetricAggregate()})
    decision = decide(policy=POLICY, stage=STAGE, canary=no_scores, control=arm(), elapsed_seconds=7200)
    assert decision.action is Action.INCONCLUSIVE
    assert decision.reason is Reason.INSUFFICIENT_DATA
    assert "live pass rate (0 canary" in decision.explanation


def test_decide__few_units__extends_without_acting_on_a_regression() -> None:
    decision = decide(
        policy=POLICY,
        stage=STAGE,
        canary=arm(units=60, judged=60, error_rate=0.5),
        control=arm(units=60, judged=60),
        elapsed_seconds=60,
    )
    assert decision.action is Action.EXTEND
    assert decision.reason is Reason.INSUFFICIENT_DATA


def test_decide__critical_error_rate_doubled__rolls_back_at_once() -> None:
    decision = decide(
        policy=POLICY, stage=STAGE, canary=arm(error_rate=0.03), control=arm(), elapsed_seconds=60
    )
    assert decision.action is Action.ROLLBACK
    assert decision.reason is Reason.CRITICAL_REGRESSION
    errors = next(m for m in decision.metrics if m.name == "api_error_rate")
    assert errors.comparison is not None
    assert errors.comparison.alpha_regression == POLICY.alpha_critical


def test_decide__non_critical_regression__holds_once_then_rolls_back_on_the_second_tick() -> None:
    canary, control = (
        arm(units=2_000, judged=1_000, pass_rate=0.712),
        arm(units=2_000, judged=1_000, pass_rate=0.84),
    )
    first = decide(policy=POLICY, stage=STAGE, canary=canary, control=control, elapsed_seconds=300)
    second = decide(
        policy=POLICY, stage=STAGE, canary=canary, control=control, elapsed_seconds=360, previous=first.state
    )
    assert (first.action, first.reason) == (Action.HOLD, Reason.REGRESSION_UNCONFIRMED)
    assert (second.action, second.reason) == (Action.ROLLBACK, Reason.REGRESSION)
    assert re.fullmatch(
        r"rolled back: live pass rate 71\.2 % vs control 84\.0 %, regression of 12\.8 points beyond the "
        r"2-point margin, lower bound \d+\.\d points, 2 consecutive ticks",
        second.explanation,
    )


COST_ONLY = Policy(guardrails=(COST,))


def lognormal_costs(seed: int, n: int, mean_usd: float) -> np.ndarray:
    """Per-call costs in dollars, priced to whole micro-USD as ingest prices them."""
    sigma = 0.6
    usd = np.random.default_rng(seed).lognormal(math.log(mean_usd) - sigma**2 / 2, sigma, n)
    return np.round(usd * 1e6) / 1e6


def cost_arm(costs: np.ndarray) -> ArmAggregates:
    """The arm as the rollups sum it: exact integer sums of micro-USD and micro-USD², in dollars."""
    micro = [int(value) for value in np.round(costs * 1e6)]
    aggregate = MetricAggregate(
        n=len(micro), total=sum(micro) / 1e6, total_sq=sum(value * value for value in micro) / 1e12
    )
    return ArmAggregates(units=len(micro), metrics={"cost_per_call": aggregate})


def assert_cost_comparison_matches_libraries(
    result: MetricResult, canary: np.ndarray, control: np.ndarray, *, alpha: float
) -> None:
    """Means (numpy), the Welch z against the ratio margin (statsmodels) and the confidence-sequence
    boundary at `alpha`: the one-sided normal mixture integrated by scipy reaches 1/α there."""
    comparison = result.comparison
    assert comparison is not None
    assert comparison.eta2 is not None
    assert comparison.standard_error is not None
    assert (comparison.canary, comparison.control) == (
        pytest.approx(canary.mean()),
        pytest.approx(control.mean()),
    )
    assert result.margin is not None
    assert result.margin == pytest.approx(0.05 * control.mean())
    # The 5 % relative margin is a ratio null: canary <= 1.05 × control, the Welch z of the canary
    # against the control's costs scaled by 1.05.
    z_stat, _ = CompareMeans(DescrStatsW(canary), DescrStatsW(1.05 * control)).ztest_ind(
        alternative="larger", usevar="unequal", value=0.0
    )
    assert (comparison.difference - result.margin) / comparison.standard_error == pytest.approx(
        z_stat, rel=1e-9
    )
    boundary = (comparison.difference - comparison.lower) / comparison.standard_error
    rho = math.sqrt(comparison.eta2)
    mixture, _ = integrate.quad(
        lambda lam: math.exp(lam * boundary - lam * lam / 2) * 2 * scipy_stats.norm.pdf(lam / rho) / rho,
        0,
        np.inf,
    )
    assert mixture == pytest.approx(1 / alpha, rel=1e-6)


def test_decide__cost_per_call_20_percent_higher__holds_then_rolls_back_with_library_values() -> None:
    canary_costs, control_costs = lognormal_costs(1, 5_000, 0.0048), lognormal_costs(2, 5_000, 0.004)
    canary, control = cost_arm(canary_costs), cost_arm(control_costs)

    first = decide(policy=COST_ONLY, stage=STAGE, canary=canary, control=control, elapsed_seconds=300)
    second = decide(
        policy=COST_ONLY,
        stage=STAGE,
        canary=canary,
        control=control,
        elapsed_seconds=360,
        previous=first.state,
    )

    assert (first.action, first.reason) == (Action.HOLD, Reason.REGRESSION_UNCONFIRMED)
    assert (second.action, second.reason) == (Action.ROLLBACK, Reason.REGRESSION)
    result = second.metrics[0]
    assert result.status is MetricStatus.REGRESSION
    assert_cost_comparison_matches_libraries(result, canary_costs, control_costs, alpha=POLICY.alpha)
    assert re.fullmatch(
        r"rolled back: cost per call \$0\.00\d{3} vs control \$0\.00\d{3}, regression of \$0\.000\d{2} "
        r"beyond the 5 % margin \(\$0\.000\d{2}\), lower bound \$0\.000\d{2}, 2 consecutive ticks",
        second.explanation,
    )


def test_decide__cost_per_call_same_distribution__shown_non_inferior_and_promoted_with_library_values() -> (
    None
):
    canary_costs, control_costs = lognormal_costs(3, 20_000, 0.004), lognormal_costs(4, 20_000, 0.004)

    decision = decide(
        policy=COST_ONLY,
        stage=STAGE,
        canary=cost_arm(canary_costs),
        control=cost_arm(control_costs),
        elapsed_seconds=1800,
    )

    assert (decision.action, decision.reason) == (Action.PROMOTE, Reason.NON_INFERIOR)
    result = decision.metrics[0]
    assert result.status is MetricStatus.NON_INFERIOR
    assert result.comparison is not None
    assert result.margin is not None
    assert result.comparison.upper < result.margin
    assert_cost_comparison_matches_libraries(result, canary_costs, control_costs, alpha=POLICY.alpha)


def test_decide__regression_not_repeated__counter_resets() -> None:
    bad, good = arm(units=2_000, judged=1_000, pass_rate=0.70), arm(units=2_000, judged=1_000)
    first = decide(policy=POLICY, stage=STAGE, canary=bad, control=good, elapsed_seconds=300)
    second = decide(
        policy=POLICY, stage=STAGE, canary=good, control=good, elapsed_seconds=360, previous=first.state
    )
    third = decide(
        policy=POLICY, stage=STAGE, canary=bad, control=good, elapsed_seconds=420, previous=second.state
    )
    assert first.state.consecutive == {"live_pass_rate": 1}
    assert second.state.consecutive == {}
    assert third.action is Action.HOLD


def test_decide__holm_family__smallest_p_value_held_to_alpha_over_family_size() -> None:
    canary, control = arm(units=2_000, judged=1_000, pass_rate=0.70), arm(units=2_000, judged=1_000)
    decision = decide(policy=POLICY, stage=STAGE, canary=canary, control=control, elapsed_seconds=300)
    pass_rate = next(m for m in decision.metrics if m.name == "live_pass_rate")
    assert pass_rate.comparison is not None
    # Non-critical acting guardrails: pass rate, cost, latency; the pass rate has the smallest p.
    assert pass_rate.comparison.alpha_regression == POLICY.alpha / 3


def test_decide__advisory_guardrail_regresses__shown_but_never_acts() -> None:
    advisory = Policy(
        guardrails=(
            Guardrail(
                name="live_pass_rate",
                label="live pass rate",
                kind=Kind.BINARY,
                direction=Direction.DECREASE_IS_BAD,
                margin=0.02,
                source=Source.LIVE_SCORE,
                may_act=False,
            ),
            ERRORS,
        )
    )
    canary, control = arm(pass_rate=0.60), arm()
    first = decide(policy=advisory, stage=STAGE, canary=canary, control=control, elapsed_seconds=1800)
    second = decide(
        policy=advisory,
        stage=STAGE,
        canary=canary,
        control=control,
        elapsed_seconds=1860,
        previous=first.state,
    )
    pass_rate = next(m for m in second.metrics if m.name == "live_pass_rate")
    assert pass_rate.status is MetricStatus.REGRESSION
    assert not pass_rate.acting
    assert second.action is Action.PROMOTE


def test_decide__judge_errors_above_limit__pauses_instead_of_failing() -> None:
    decision = decide(
        policy=POLICY,
        stage=STAGE,
        canary=arm(judged=1_000, scorer_errors=600),
        control=arm(judged=1_000),
        elapsed_seconds=1800,
    )
    assert decision.action is Action.PAUSE
    assert decision.reason is Reason.SCORER_ERRORS


def test_decide__cold_cache__cost_and_latency_excluded_and_said_so() -> None:
    decision = decide(
        policy=POLICY,
        stage=STAGE,
        canary=arm(cost_mean=0.008, median_ms=4000, cache_hit_ratio=0.1),
        control=arm(cache_hit_ratio=0.7),
        elapsed_seconds=1200,
    )
    statuses = {m.name: m.status for m in decision.metrics}
    assert decision.warming
    assert statuses["cost_per_call"] is MetricStatus.EXCLUDED_WARMUP
    assert statuses["total_p95"] is MetricStatus.EXCLUDED_WARMUP
    assert (decision.action, decision.reason) == (Action.HOLD, Reason.CACHE_WARMUP)
    assert "cost per call, total latency p95 not yet comparable" in decision.explanation


def test_decide__cold_cache__quality_regression_still_acts() -> None:
    decision = decide(
        policy=POLICY,
        stage=STAGE,
        canary=arm(error_rate=0.03, cache_hit_ratio=0.1),
        control=arm(cache_hit_ratio=0.7),
        elapsed_seconds=1200,
    )
    assert decision.action is Action.ROLLBACK
    assert decision.reason is Reason.CRITICAL_REGRESSION
    assert "cache warms" in decision.explanation


def test_decide__cache_warmed__cost_compared_on_what_came_after() -> None:
    cold = decide(
        policy=POLICY,
        stage=STAGE,
        canary=arm(units=4_000, cost_mean=0.012, cache_hit_ratio=0.1),
        control=arm(units=4_000, cache_hit_ratio=0.7),
        elapsed_seconds=600,
    )
    snapshot_canary, snapshot_control = (
        arm(units=4_000, cost_mean=0.012, cache_hit_ratio=0.68),
        arm(units=4_000, cache_hit_ratio=0.7),
    )
    warmed = decide(
        policy=POLICY,
        stage=STAGE,
        canary=snapshot_canary,
        control=snapshot_control,
        elapsed_seconds=660,
        previous=cold.state,
    )
    assert warmed.state.warm_snapshot == (snapshot_canary, snapshot_control)
    later_canary = ArmAggregates(
        units=44_000,
        metrics={
            **arm(units=44_000).metrics,
            "cost_per_call": MetricAggregate(
                n=44_000,
                total=4_000 * 0.012 + 40_000 * 0.004,
                total_sq=snapshot_canary.metric("cost_per_call").total_sq
                + cost(40_000, 0.004, 0.002).total_sq,
            ),
        },
        cache_hit_ratio=0.7,
    )
    later = decide(
        policy=POLICY,
        stage=STAGE,
        canary=later_canary,
        control=arm(units=44_000, cache_hit_ratio=0.7),
        elapsed_seconds=3600,
        previous=warmed.state,
    )
    cost_result = next(m for m in later.metrics if m.name == "cost_per_call")
    assert cost_result.n_canary == 40_000
    assert cost_result.status is MetricStatus.NON_INFERIOR
    assert "since the cache warmed at 11 min" in later.explanation


def test_decide__same_inputs__same_decision() -> None:
    canary, control = arm(seed=3), arm(seed=4)
    first = decide(policy=POLICY, stage=STAGE, canary=canary, control=control, elapsed_seconds=1800)
    again = decide(policy=POLICY, stage=STAGE, canary=canary, control=control, elapsed_seconds=1800)
    assert first == again


def test_decide__previous_state_default__equals_empty_state() -> None:
    canary, control = arm(seed=3), arm(seed=4)
    implicit = decide(policy=POLICY, stage=STAGE, canary=canary, control=control, elapsed_seconds=60)
    explicit = decide(
        policy=POLICY, stage=STAGE, canary=canary, control=control, elapsed_seconds=60, previous=TickState()
    )
    assert implicit == explicit


def test_conclude_experiment__two_passing_arms__marks_the_cheapest_with_evidence() -> None:
    conclusion = conclude_experiment(
        policy=POLICY,
        baseline=arm(seed=1),
        arms={
            "haiku": arm(cost_mean=0.0015, seed=2),
            "sonnet": arm(cost_mean=0.0038, seed=3),
            "worse": arm(pass_rate=0.75, cost_mean=0.001, seed=4),
        },
        weights={"baseline": 1, "haiku": 1, "sonnet": 1, "worse": 1},
        cost_metric="cost_per_call",
    )
    passing = {v.arm for v in conclusion.arms if v.passes}
    assert passing == {"haiku", "sonnet"}
    assert conclusion.cheapest_passing == "haiku"
    assert conclusion.evidence.startswith("haiku: cost per call $0.00150 vs baseline $0.00400")
    assert "next cheapest passing arm sonnet" in conclusion.evidence
    worse = next(v for v in conclusion.arms if v.arm == "worse")
    assert worse.failing == ("live_pass_rate",)


def test_conclude_experiment__latency_budget_exceeded__arm_fails() -> None:
    budgeted = Policy(
        guardrails=(
            PASS_RATE,
            Guardrail(
                name="total_p95",
                label="total latency p95",
                kind=Kind.QUANTILE,
                direction=Direction.INCREASE_IS_BAD,
                margin=2.0,
                relative_margin=True,
                unit="ms",
                budget=3_000.0,
            ),
        )
    )
    conclusion = conclude_experiment(
        policy=budgeted,
        baseline=arm(median_ms=1_500, seed=1),
        arms={"slow": arm(median_ms=2_500, seed=2)},
        weights={"baseline": 1, "slow": 1},
        cost_metric="cost_per_call",
    )
    assert conclusion.cheapest_passing is None
    assert conclusion.arms[0].failing == ("total_p95",)


def test_conclude_experiment__goal_metrics__benjamini_hochberg_across_arms() -> None:
    goal = Guardrail(
        name="live_pass_rate",
        label="live pass rate",
        kind=Kind.BINARY,
        direction=Direction.DECREASE_IS_BAD,
        margin=0.0,
    )
    conclusion = conclude_experiment(
        policy=POLICY,
        baseline=arm(seed=1),
        arms={"better": arm(pass_rate=0.90, seed=2), "same": arm(seed=3)},
        weights={"baseline": 1, "better": 1, "same": 1},
        cost_metric="cost_per_call",
        goals=(goal,),
    )
    goals = {v.arm: v.goals["live_pass_rate"] for v in conclusion.arms}
    assert goals["better"][1]
    assert not goals["same"][1]


def test_conclude_experiment__sample_ratio_mismatch__no_arm_passes() -> None:
    conclusion = conclude_experiment(
        policy=POLICY,
        baseline=arm(units=30_000),
        arms={"cheap": arm(units=40_000, cost_mean=0.002)},
        weights={"baseline": 1, "cheap": 1},
        cost_metric="cost_per_call",
    )
    assert not conclusion.health_ok
    assert conclusion.cheapest_passing is None


def test_conclude_experiment__mismatch_the_chi_square_alone_sees__healthy_but_no_arm_passes() -> None:
    conclusion = conclude_experiment(
        policy=POLICY,
        baseline=arm(units=4_800),
        arms={"cheap": arm(units=5_200, cost_mean=0.002)},
        weights={"baseline": 1, "cheap": 1},
        cost_metric="cost_per_call",
    )
    assert conclusion.health_ok  # nothing pauses on the chi-square alone
    assert conclusion.cheapest_passing is None
    assert not conclusion.arms[0].passes
    assert conclusion.evidence == (
        "no arm can pass: sample-ratio mismatch (sequential test p = 0.0036, chi-square p = 6.3e-05)"
    )


def test_decide__paired_replay_regression__rolls_back_saying_paired_evidence_was_used() -> None:
    paired = Guardrail(
        name="replay_pass_rate",
        label="replayed pass rate",
        kind=Kind.CONTINUOUS,
        direction=Direction.DECREASE_IS_BAD,
        margin=0.02,
        source=Source.PAIRED_REPLAY,
        critical=True,
    )
    # 400 pairs: the candidate fails 60 inputs the control passed, and passes 8 it failed.
    differences = MetricAggregate(n=400, total=-52.0, total_sq=68.0)
    canary = ArmAggregates(units=2_000, metrics={**arm(units=2_000).metrics, "replay_pass_rate": differences})
    decision = decide(
        policy=Policy(guardrails=(paired, ERRORS)),
        stage=STAGE,
        canary=canary,
        control=arm(units=2_000),
        elapsed_seconds=300,
    )
    assert (decision.action, decision.reason) == (Action.ROLLBACK, Reason.CRITICAL_REGRESSION)
    assert "replayed pass rate on 400 paired replays, candidate worse by" in decision.explanation
    assert "(paired evidence)" in decision.explanation


def test_decide__paired_replay_non_inferior__promotes_saying_paired_evidence_was_used() -> None:
    paired = Guardrail(
        name="replay_pass_rate",
        label="replayed pass rate",
        kind=Kind.CONTINUOUS,
        direction=Direction.DECREASE_IS_BAD,
        margin=0.02,
        source=Source.PAIRED_REPLAY,
    )
    # 2,000 pairs: the candidate fails 10 inputs the control passed, and passes 10 it failed.
    differences = MetricAggregate(n=2_000, total=0.0, total_sq=20.0)
    canary = ArmAggregates(units=40_000, metrics={**arm().metrics, "replay_pass_rate": differences})

    decision = decide(
        policy=Policy(guardrails=(paired, ERRORS)),
        stage=STAGE,
        canary=canary,
        control=arm(),
        elapsed_seconds=3600,
    )

    assert (decision.action, decision.reason) == (Action.PROMOTE, Reason.NON_INFERIOR)
    assert "replayed pass rate on 2000 paired replays (paired evidence)" in decision.explanation
