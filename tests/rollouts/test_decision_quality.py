"""A small, seeded run of bench/bench_decisions.py's simulation: a regression of the statistics or of
the decision rules changes these outcomes and fails here (the full figures come from the bench)."""

from __future__ import annotations

import statistics

import numpy as np

from bench._rollout_sim import SCENARIOS, RunOutcome, error_spike, run
from rollouts.analysis import Action, Reason


def simulate(key: str, runs: int, seed: int) -> list[RunOutcome]:
    rng = np.random.default_rng(seed)
    return [run(SCENARIOS[key], rng) for _ in range(runs)]


def test_simulation__identical_arms__never_rolled_back_and_mostly_promoted() -> None:
    outcomes = simulate("aa", runs=12, seed=101)
    assert not any(o.final is Action.ROLLBACK for o in outcomes)
    assert sum(o.final is Action.PROMOTE for o in outcomes) >= 9


def test_simulation__pass_rate_down_ten_points__rolled_back_in_the_first_stage() -> None:
    outcomes = simulate("drop10", runs=12, seed=102)
    assert all(o.final is Action.ROLLBACK and o.last.weight == 0.01 for o in outcomes)
    assert all(o.last.decision.reason is Reason.REGRESSION for o in outcomes)


def test_simulation__pass_rate_down_five_points__rolled_back_before_leaving_ten_percent() -> None:
    outcomes = simulate("drop5", runs=12, seed=103)
    assert all(o.final is Action.ROLLBACK for o in outcomes)


def test_simulation__error_rate_doubles_at_ten_percent__critical_rollback_in_that_stage() -> None:
    outcomes = simulate("errors2x_at_10", runs=4, seed=104)
    rolled_back = [o for o in outcomes if o.final is Action.ROLLBACK]
    assert rolled_back
    assert all(
        o.last.weight == 0.10 and o.last.decision.reason is Reason.CRITICAL_REGRESSION for o in rolled_back
    )
    assert all(o.last.ticks <= 30 for o in rolled_back)


def test_simulation__no_data_or_one_arm__never_promoted() -> None:
    for key in ("no_data", "canary_only", "control_only"):
        outcomes = simulate(key, runs=3, seed=105)
        assert not any(o.final is Action.PROMOTE for o in outcomes)


def test_simulation__split_52_48__paused_never_promoted_nor_rolled_back() -> None:
    outcomes = simulate("srm", runs=12, seed=106)
    assert all(o.final is Action.PAUSE for o in outcomes)
    assert all(o.last.decision.reason is Reason.HEALTH_CHECK_FAILED for o in outcomes)


def test_simulation__cold_cache_only__not_rolled_back() -> None:
    outcomes = simulate("cold_cache", runs=5, seed=107)
    assert not any(o.final is Action.ROLLBACK for o in outcomes)


def test_simulation__cold_cache_without_hit_ratio__rolled_back_on_cost_or_latency() -> None:
    # The contrast that shows the warm-up exclusion is what keeps the cold candidate alive.
    outcomes = simulate("cold_cache_no_ratio", runs=3, seed=108)
    assert all(o.final is Action.ROLLBACK for o in outcomes)


def test_simulation__paired_replay_ten_point_drop__rolled_back_at_one_percent_on_fewer_samples() -> None:
    paired = simulate("paired_drop10", runs=12, seed=108)
    unpaired = simulate("drop10", runs=12, seed=108)
    assert all(o.final is Action.ROLLBACK and o.last.weight == 0.01 for o in paired)
    assert all("(paired evidence)" in o.last.decision.explanation for o in paired)
    judged = [(o.last.judged_per_arm, u.last.judged_per_arm) for o, u in zip(paired, unpaired, strict=True)]
    assert statistics.median(p for p, _ in judged) < statistics.median(u for _, u in judged) / 2


def test_simulation__paired_replay_identical_arms__never_rolled_back() -> None:
    outcomes = simulate("paired_aa", runs=6, seed=109)
    assert not any(o.final is Action.ROLLBACK for o in outcomes)


def test_simulation__paired_replay_candidate_never_wins__rolled_back_within_three_hundred_pairs() -> None:
    # The betting sequence on the pairs (critical, as the default paired guardrail is): a candidate
    # that fails 10 % of the inputs the control passed and never the reverse is caught on <= 300.
    outcomes = simulate("paired_drop10_no_wins", runs=12, seed=110)
    assert all(
        o.final is Action.ROLLBACK and o.last.decision.reason is Reason.CRITICAL_REGRESSION for o in outcomes
    )
    assert sum(o.last.judged_per_arm <= 300 for o in outcomes) >= 11


def test_simulation__error_rate_doubles_at_ten_percent_at_200k_a_minute__rolled_back_in_three_ticks() -> None:
    rng = np.random.default_rng(111)
    outcomes = [run(error_spike(200_000, from_first_stage=False), rng) for _ in range(3)]
    assert all(o.final is Action.ROLLBACK and o.last.weight == 0.10 and o.last.ticks <= 3 for o in outcomes)
