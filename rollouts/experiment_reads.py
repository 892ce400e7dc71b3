"""What an experiment's tick reads and decides on, writing nothing: every arm's aggregates since
it started (from the rollups, with cost per call), the policy, and the decision of
`experiment_analysis.decide_experiment`, with the inputs a decision keeps."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rollouts import analysis, decision_records, experiment_analysis, plans, stats
from rollouts.arm_aggregates import read_arm_aggregates
from rollouts.experiment_analysis import (
    COST_METRIC,
    COST_TEST,
    ExperimentTick,
    cost_per_call,
    decide_experiment,
)
from rollouts.models import Experiment, ExperimentArm

COST_SOURCE = plans.GuardrailSpec(
    name=COST_METRIC,
    label="cost per call",
    metric="cost_per_call",
    kind="continuous",
    direction="increase_is_bad",
    margin=0.0,
)

# The analysis code's version, kept with every decision: the same inputs under the same code
# give the same decision.
ANALYSIS_VERSION = hashlib.sha256(
    "".join(inspect.getsource(module) for module in (analysis, stats, experiment_analysis)).encode()
).hexdigest()[:16]


def arms_of(experiment: Experiment) -> list[ExperimentArm]:
    return list(experiment.arms.select_related("version").order_by("index"))


def experiment_policy(experiment: Experiment) -> tuple[analysis.Policy, tuple[analysis.Guardrail, ...]]:
    """The guardrails (latency ones with the surface's budget) and the goal metrics."""

    def guardrail(fields: Mapping[str, Any], *, budget: float | None = None) -> analysis.Guardrail:
        spec = plans.GuardrailSpec(**fields)
        return analysis.Guardrail(
            name=spec.name,
            label=spec.label,
            kind=analysis.Kind(spec.kind),
            direction=analysis.Direction(spec.direction),
            margin=spec.margin,
            relative_margin=spec.relative_margin,
            critical=spec.critical,
            may_act=spec.may_act,
            source=analysis.Source(spec.source),
            quantile=spec.quantile,
            cache_sensitive=spec.cache_sensitive,
            unit=spec.unit,
            budget=budget,
        )

    budgets = experiment.latency_budgets_ms or {}
    policy = analysis.Policy(
        guardrails=tuple(guardrail(g, budget=budgets.get(g["metric"])) for g in experiment.guardrails),
        alpha=experiment.alpha,
    )
    return policy, tuple(guardrail(g) for g in experiment.goals)


@dataclasses.dataclass(frozen=True)
class Analysed:
    experiment: Experiment
    tick: ExperimentTick
    inputs: dict[str, Any]
    arms: dict[str, analysis.ArmAggregates]


def analyse_experiment(*, experiment: Experiment, now: datetime, by_hand: bool = False) -> Analysed:
    """Read every arm's aggregates since the experiment started and decide; writes nothing."""
    arms = arms_of(experiment)
    started = experiment.started_at or now
    policy, goals = experiment_policy(experiment)
    specs = [plans.GuardrailSpec(**g) for g in [*experiment.guardrails, *experiment.goals]]
    # Every arm's cost per call (n, sum, sum of squares), whether or not a guardrail tests it:
    # the cheapest that passes is chosen by it. A policy's own cost guardrail reads the same.
    aggregates, counters = read_arm_aggregates(
        environment_id=experiment.environment_id,
        flag_id=experiment.flag_id,
        arms={arm.name: arm.version.number for arm in arms},
        guardrails=[*specs, COST_SOURCE],
        since=started,
        until=now,
    )
    tick = decide_experiment(
        policy=policy,
        arms=aggregates,
        weights={arm.name: arm.weight for arm in arms},
        goals=goals,
        elapsed_seconds=(now - started).total_seconds(),
        window_seconds=experiment.window_seconds,
        required_units_per_arm=experiment.required_units_per_arm,
        by_hand=by_hand,
    )
    inputs = {
        "window": {"since": started.isoformat(), "until": now.isoformat()},
        "arms": {arm.name: {"version": arm.version.number, "weight": arm.weight} for arm in arms},
        "experiment_version": experiment.version,
        "analysis_version": ANALYSIS_VERSION,
        "cost_test": COST_TEST,
        "counters": counters,
        "aggregates": {name: decision_records.arm_json(aggregate) for name, aggregate in aggregates.items()},
    }
    return Analysed(experiment, tick, inputs, aggregates)


def arms_json(tick: ExperimentTick, aggregates: Mapping[str, analysis.ArmAggregates]) -> list[dict[str, Any]]:
    """Per candidate arm: passes, failing guardrails, each comparison's bounds, cost, goals."""
    return [
        decision_records.json_ready(
            {
                "arm": verdict.arm,
                "passes": verdict.passes,
                "cheapest_passing": verdict.arm == tick.conclusion.cheapest_passing,
                "failing": list(verdict.failing),
                "cost_per_call": cost_per_call(aggregates[verdict.arm]),
                "units": aggregates[verdict.arm].units,
                "comparisons": {name: dataclasses.asdict(c) for name, c in verdict.comparisons.items()},
                "goals": {
                    name: {"p_adjusted": p, "significant": s} for name, (p, s) in verdict.goals.items()
                },
            }
        )
        for verdict in tick.conclusion.arms
    ]
