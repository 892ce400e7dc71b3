"""What an experiment's tick decides, and the words of its conclusion (pure: no Django).

Each tick of a running experiment (DESIGN.md "Analysis", rollout-analysis.md §8.6):

1. health: the units per arm against the arms' weights. The sequential test (Lindon & Malek's
   Dirichlet-multinomial Bayes factor, `stats.srm_sequential_p_value`, valid however often it
   is read) at p < 0.001 pauses the experiment (`health_check_failed`): no arm can be judged on
   a split that is wrong. Pearson's chi-square of the same reading (`stats.srm_p_value`)
   below 0.001 keeps every arm from passing meanwhile;
2. the end: the fixed window has passed, or every arm has the required number of units →
   conclude (`window_ended`, `sample_size_reached`);
3. otherwise hold, with the interim conclusion kept in the decision for people to watch.

The conclusion is `analysis.conclude_experiment`: an arm passes when every acting guardrail is
shown non-inferior to the baseline and its latency p95 stays within the surface's budget; goal
metrics are two-sided with Benjamini-Hochberg across arms × goals; the cheapest arm that passes
is marked. Cost per call is Σ cost ÷ calls with a known cost per arm, from the rollups: a point
estimate (the rollups keep no sum of squares of cost, so no test of the cost difference is
made, and the decision says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from rollouts.analysis import ArmAggregates, ExperimentConclusion, Guardrail, Policy, conclude_experiment

BASELINE = "baseline"
COST_METRIC = "cost_per_call"
COST_TEST = (
    "cheapest by point estimate: Σ cost ÷ calls with a known cost, per arm, from the rollups; "
    "a cost guardrail in the policy is tested as a mean (the rollups keep the sum of squared costs)"
)


class ExperimentAction(StrEnum):
    HOLD = "hold"
    PAUSE = "pause"
    CONCLUDE = "conclude"


class ExperimentReason(StrEnum):
    HEALTH_CHECK_FAILED = "health_check_failed"
    WINDOW_ENDED = "window_ended"
    SAMPLE_SIZE_REACHED = "sample_size_reached"
    CONCLUDED_BY_HAND = "concluded_by_hand"
    COLLECTING = "collecting"


@dataclass(frozen=True)
class ExperimentTick:
    action: ExperimentAction
    reason: ExperimentReason
    explanation: str
    conclusion: ExperimentConclusion


def cost_per_call(arm: ArmAggregates) -> float | None:
    cost = arm.metric(COST_METRIC)
    return cost.total / cost.n if cost.n else None


def _money(value: float | None) -> str:
    return "no cost known" if value is None else f"${value:.5f}"


def conclusion_sentence(conclusion: ExperimentConclusion, arms: Mapping[str, ArmAggregates]) -> str:
    """One sentence: the arms that pass, the cheapest with its cost against the baseline's."""
    if not conclusion.health_ok:
        return f"concluded without a winner: {conclusion.evidence}"
    passing = [verdict.arm for verdict in conclusion.arms if verdict.passes]
    failing = "; ".join(
        f"{verdict.arm} not shown non-inferior on {', '.join(verdict.failing)}"
        for verdict in conclusion.arms
        if not verdict.passes and verdict.failing
    )
    if conclusion.cheapest_passing is None:
        return "concluded without a winner: no arm passed every guardrail" + (
            f" ({failing})" if failing else ""
        )
    cheapest = conclusion.cheapest_passing
    sentence = (
        f"concluded: {cheapest} is the cheapest arm that passes at {_money(cost_per_call(arms[cheapest]))} "
        f"per call vs baseline {_money(cost_per_call(arms[BASELINE]))} "
        f"({len(passing)} of {len(conclusion.arms)} candidates pass every guardrail"
    )
    return sentence + (f"; {failing})" if failing else ")")


def decide_experiment(
    *,
    policy: Policy,
    arms: Mapping[str, ArmAggregates],
    weights: Mapping[str, float],
    goals: tuple[Guardrail, ...],
    elapsed_seconds: float,
    window_seconds: float | None,
    required_units_per_arm: int | None,
    by_hand: bool = False,
) -> ExperimentTick:
    """The tick's action on the arms' cumulative aggregates since the experiment started.

    `arms` holds every arm, the baseline under "baseline"; `by_hand` concludes now (a person
    asked), still naming only arms shown to pass.
    """
    candidates = {name: aggregate for name, aggregate in arms.items() if name != BASELINE}
    conclusion = conclude_experiment(
        policy=policy,
        baseline=arms[BASELINE],
        arms=candidates,
        weights=weights,
        cost_metric=COST_METRIC,
        goals=goals,
    )
    if by_hand:
        return ExperimentTick(
            ExperimentAction.CONCLUDE,
            ExperimentReason.CONCLUDED_BY_HAND,
            conclusion_sentence(conclusion, arms),
            conclusion,
        )
    if not conclusion.health_ok:
        return ExperimentTick(
            ExperimentAction.PAUSE,
            ExperimentReason.HEALTH_CHECK_FAILED,
            f"paused: sample-ratio mismatch across the {len(arms)} arms "
            f"(sequential test p = {conclusion.srm_p_value:.2g} < {policy.srm_alpha:g}, "
            f"chi-square p = {conclusion.srm_chi_square_p_value:.2g}); "
            + ", ".join(f"{name} {arm.units:,} units" for name, arm in arms.items()),
            conclusion,
        )
    fewest = min(arm.units for arm in arms.values())
    if window_seconds is not None and elapsed_seconds >= window_seconds:
        reason = ExperimentReason.WINDOW_ENDED
    elif required_units_per_arm is not None and fewest >= required_units_per_arm:
        reason = ExperimentReason.SAMPLE_SIZE_REACHED
    else:
        progress = []
        if window_seconds is not None:
            progress.append(f"{elapsed_seconds / 60:.0f} of {window_seconds / 60:.0f} minutes")
        if required_units_per_arm is not None:
            progress.append(f"fewest units in an arm {fewest:,} of {required_units_per_arm:,}")
        interim = conclusion.cheapest_passing or "none yet"
        return ExperimentTick(
            ExperimentAction.HOLD,
            ExperimentReason.COLLECTING,
            f"collecting: {'; '.join(progress)}; cheapest arm passing so far: {interim}",
            conclusion,
        )
    return ExperimentTick(
        ExperimentAction.CONCLUDE, reason, conclusion_sentence(conclusion, arms), conclusion
    )
