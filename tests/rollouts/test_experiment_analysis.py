"""An experiment's tick and conclusion on fixed aggregates: which arms pass, which is the
cheapest, goal metrics under Benjamini-Hochberg (against statsmodels), SRM over k arms (against
scipy's chisquare), and when a tick holds, pauses or concludes."""

from __future__ import annotations

import pytest
from scipy.stats import chisquare
from statsmodels.stats.multitest import multipletests

from rollouts import stats
from rollouts.analysis import ArmAggregates, Direction, Guardrail, Kind, MetricAggregate, Policy, Source
from rollouts.experiment_analysis import (
    COST_METRIC,
    ExperimentAction,
    ExperimentReason,
    ExperimentTick,
    conclusion_sentence,
    decide_experiment,
)
from telemetry import histograms

PASS_RATE = Guardrail(
    name="live_pass_rate:helpful",
    label="live pass rate (helpful)",
    kind=Kind.BINARY,
    direction=Direction.DECREASE_IS_BAD,
    margin=0.02,
    source=Source.LIVE_SCORE,
    critical=True,
)
ERRORS = Guardrail(
    name="api_error_rate",
    label="API error rate",
    kind=Kind.BINARY,
    direction=Direction.INCREASE_IS_BAD,
    margin=0.01,
    critical=True,
)
LATENCY = Guardrail(
    name="latency_p95",
    label="total latency p95",
    kind=Kind.QUANTILE,
    direction=Direction.INCREASE_IS_BAD,
    margin=0.25,
    relative_margin=True,
    unit="ms",
    budget=3_000.0,
)
POLICY = Policy(guardrails=(PASS_RATE, ERRORS, LATENCY))
N = 20_000


def fixed_arm(
    *, passed: int, errors: int = 200, cost_usd: float, slow_ms: float = 1_500.0, slow_percent: int = 2
) -> ArmAggregates:
    """N calls and N judged samples; `slow_percent` of the calls at `slow_ms`, the rest at 800 ms."""
    latency = {
        histograms.bucket_of(800.0): N * (100 - slow_percent) // 100,
        histograms.bucket_of(slow_ms): N * slow_percent // 100,
    }
    return ArmAggregates(
        units=N,
        metrics={
            PASS_RATE.name: MetricAggregate(n=N, total=passed, total_sq=passed),
            ERRORS.name: MetricAggregate(n=N, total=errors, total_sq=errors),
            LATENCY.name: MetricAggregate(n=N, histogram=latency),
            COST_METRIC: MetricAggregate(n=N, total=N * cost_usd),
        },
    )


ARMS = {
    "baseline": fixed_arm(passed=17_000, cost_usd=0.0040),
    "sonnet": fixed_arm(passed=17_100, cost_usd=0.0030),
    "haiku": fixed_arm(passed=16_980, cost_usd=0.0015),
    # The cheapest of all, and 10 points worse on the live pass rate: it must not win.
    "mini": fixed_arm(passed=15_000, cost_usd=0.0008),
}
WEIGHTS = {"baseline": 2500, "sonnet": 2500, "haiku": 2500, "mini": 2500}


def _decide(arms: dict[str, ArmAggregates] = ARMS, **overrides: object) -> ExperimentTick:
    fields: dict[str, object] = {
        "policy": POLICY,
        "arms": arms,
        "weights": WEIGHTS,
        "goals": (),
        "elapsed_seconds": 86_400.0,
        "window_seconds": 86_400.0,
        "required_units_per_arm": None,
    }
    fields.update(overrides)
    return decide_experiment(**fields)  # type: ignore[arg-type]


def test_conclusion__fixed_data__two_arms_pass_and_the_cheapest_of_them_wins() -> None:
    tick = _decide()

    verdicts = {verdict.arm: verdict for verdict in tick.conclusion.arms}
    assert (tick.action, tick.reason) == (ExperimentAction.CONCLUDE, ExperimentReason.WINDOW_ENDED)
    assert {arm for arm, verdict in verdicts.items() if verdict.passes} == {"sonnet", "haiku"}
    assert verdicts["mini"].failing == (PASS_RATE.name,)
    assert tick.conclusion.cheapest_passing == "haiku"
    assert verdicts["haiku"].cost == pytest.approx(0.0015)
    assert tick.conclusion.evidence.startswith("haiku: cost per call $0.00150 vs baseline $0.00400")
    assert tick.explanation == (
        "concluded: haiku is the cheapest arm that passes at $0.00150 per call vs baseline $0.00400 "
        "(2 of 3 candidates pass every guardrail; mini not shown non-inferior on live_pass_rate:helpful)"
    )


def test_conclusion__arm_over_the_latency_budget__fails_though_cheapest() -> None:
    arms = {**ARMS, "haiku": fixed_arm(passed=16_980, cost_usd=0.0015, slow_ms=4_000.0, slow_percent=10)}

    tick = _decide(arms)

    verdicts = {verdict.arm: verdict for verdict in tick.conclusion.arms}
    assert LATENCY.name in verdicts["haiku"].failing
    assert tick.conclusion.cheapest_passing == "sonnet"


def test_conclusion__as_slow_as_the_baseline_but_over_the_budget__fails() -> None:
    # Non-inferior to a baseline that is itself over the surface's 3-second p95 budget.
    arms = {
        "baseline": fixed_arm(passed=17_000, cost_usd=0.0040, slow_ms=3_300.0, slow_percent=10),
        "haiku": fixed_arm(passed=17_000, cost_usd=0.0015, slow_ms=3_300.0, slow_percent=10),
    }

    tick = _decide(arms, weights={"baseline": 5000, "haiku": 5000})

    [haiku] = tick.conclusion.arms
    assert haiku.comparisons[LATENCY.name].non_inferior
    assert haiku.failing == (LATENCY.name,)
    assert tick.conclusion.cheapest_passing is None


def test_conclusion__an_arm_without_data__never_passes() -> None:
    arms = {**ARMS, "haiku": ArmAggregates(units=N, metrics={COST_METRIC: MetricAggregate(n=N, total=1.0)})}

    tick = _decide(arms)

    haiku = next(verdict for verdict in tick.conclusion.arms if verdict.arm == "haiku")
    assert not haiku.passes
    assert set(haiku.failing) == {PASS_RATE.name, ERRORS.name, LATENCY.name}


def test_conclusion__goal_metrics__benjamini_hochberg_across_arms_and_goals_as_statsmodels() -> None:
    goals = (
        Guardrail("live_pass_rate:helpful", "live pass rate", Kind.BINARY, Direction.DECREASE_IS_BAD, 0.0),
        Guardrail("api_error_rate", "API error rate", Kind.BINARY, Direction.INCREASE_IS_BAD, 0.0),
    )
    arms = {**ARMS, "sonnet": fixed_arm(passed=17_400, errors=150, cost_usd=0.0030)}

    tick = _decide(arms, goals=goals)

    keys, raw = [], []
    for name in ("sonnet", "haiku", "mini"):
        for goal in goals:
            canary, control = arms[name].metric(goal.name), arms["baseline"].metric(goal.name)
            keys.append((name, goal.name))
            raw.append(
                stats.two_sided_difference_p_value(
                    stats.Moments(canary.n, canary.total, canary.total),
                    stats.Moments(control.n, control.total, control.total),
                    binary=True,
                    n_star=POLICY.n_star,
                )
            )
    reject, adjusted, _, _ = multipletests(raw, alpha=POLICY.alpha, method="fdr_bh")
    verdicts = {verdict.arm: verdict for verdict in tick.conclusion.arms}
    for (name, goal_name), expected_p, expected_reject in zip(keys, adjusted, reject, strict=True):
        assert verdicts[name].goals[goal_name] == (pytest.approx(expected_p), bool(expected_reject))
    # The 10-point drop of mini is a discovery; haiku's 0.1-point difference is not.
    assert verdicts["mini"].goals["live_pass_rate:helpful"][1]
    assert not verdicts["haiku"].goals["live_pass_rate:helpful"][1]


def test_srm__four_arms__the_p_value_of_scipys_chisquare() -> None:
    observed = [10_400, 9_800, 9_900, 9_700]
    weights = [4000, 2000, 2000, 2000]

    expected = chisquare(observed, [sum(observed) * w / sum(weights) for w in weights]).pvalue

    assert stats.srm_p_value(observed, weights) == pytest.approx(expected, rel=1e-9)


def test_tick__sample_ratio_mismatch_over_four_arms__pauses() -> None:
    arms = {**ARMS, "baseline": ArmAggregates(units=22_000, metrics=ARMS["baseline"].metrics)}

    tick = _decide(arms, elapsed_seconds=600.0)

    assert (tick.action, tick.reason) == (ExperimentAction.PAUSE, ExperimentReason.HEALTH_CHECK_FAILED)
    assert tick.explanation.startswith("paused: sample-ratio mismatch across the 4 arms")


def test_tick__window_not_over__holds_with_the_interim_cheapest() -> None:
    tick = _decide(elapsed_seconds=3_600.0)

    assert (tick.action, tick.reason) == (ExperimentAction.HOLD, ExperimentReason.COLLECTING)
    assert tick.explanation == ("collecting: 60 of 1440 minutes; cheapest arm passing so far: haiku")


def test_tick__every_arm_has_the_required_sample__concludes() -> None:
    tick = _decide(window_seconds=None, required_units_per_arm=N, elapsed_seconds=60.0)

    assert (tick.action, tick.reason) == (ExperimentAction.CONCLUDE, ExperimentReason.SAMPLE_SIZE_REACHED)


def test_tick__one_arm_short_of_the_required_sample__holds() -> None:
    tick = _decide(window_seconds=None, required_units_per_arm=N + 1, elapsed_seconds=60.0)

    assert tick.action is ExperimentAction.HOLD
    assert "fewest units in an arm 20,000 of 20,001" in tick.explanation


def test_conclusion_sentence__no_arm_passes__says_so_and_why() -> None:
    arms = {"baseline": ARMS["baseline"], "mini": ARMS["mini"]}

    tick = _decide(arms, weights={"baseline": 5000, "mini": 5000})

    assert tick.conclusion.cheapest_passing is None
    assert conclusion_sentence(tick.conclusion, arms) == (
        "concluded without a winner: no arm passed every guardrail "
        "(mini not shown non-inferior on live_pass_rate:helpful)"
    )
