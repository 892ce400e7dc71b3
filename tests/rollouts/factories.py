"""A flag serving v1 with a candidate v2, rollouts of it in every state, and the rollup rows
telemetry ingest and live scoring leave behind, for the rollouts tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from evals.models import LiveScoreRollup
from evals.services import gate
from flags import services as flag_services
from flags.models import ConfigVersion, Environment, Flag
from rollouts.models import Experiment, Rollout
from rollouts.services import checklist, experiments, lifecycle, ticks
from telemetry import histograms
from telemetry.models.calls import Rollup, RollupHistogram
from tests.evals.gate_factories import make_eval_set_version
from tests.factories import FACTORY_ACTOR, make_environment, make_flag, make_version

CANDIDATE_CONTENT = {"model": "claude-haiku-4-5", "max_tokens": 512, "cache_control": {"type": "ephemeral"}}
# Two analysed stages and the promotion, with small minimums.
STAGES: list[dict[str, Any]] = [
    {
        "weight": 100,
        "min_duration_seconds": 0,
        "max_duration_seconds": 3600,
        "min_units_per_arm": 50,
        "min_judged_per_arm": 30,
    },
    {
        "weight": 1000,
        "min_duration_seconds": 0,
        "max_duration_seconds": 3600,
        "min_units_per_arm": 50,
        "min_judged_per_arm": 30,
    },
    {"weight": 10000},
]
POLICY: list[dict[str, Any]] = [
    {"metric": "api_error_rate", "margin": 0.01, "critical": True},
    {"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.02, "critical": True},
]


@dataclass
class World:
    environment: Environment
    flag: Flag
    baseline: ConfigVersion
    candidate: ConfigVersion


def without_checklist(environment: Environment) -> Environment:
    """Require no checklist item in `environment`: for tests of the state machine, the analysis
    and the API's verbs (the checklist has its own tests, tests/rollouts/test_checklist*.py)."""
    checklist.set_checklist_policy(environment=environment, required=[], actor=FACTORY_ACTOR, reason="tests")
    return environment


def make_world(**flag_fields: Any) -> World:
    environment = without_checklist(make_environment())
    flag = make_flag(**flag_fields)
    baseline = make_version(flag=flag)
    candidate = make_version(flag=flag, content=dict(CANDIDATE_CONTENT))
    flag_services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)
    return World(environment, flag, baseline, candidate)


def gate_the_flag(world: World) -> None:
    """A gate policy with an eval set version and no verdict: the candidate is not admitted."""
    make_eval_set_version(cases=3, key=f"{world.flag.key}-qa")
    gate.set_gate_policy(
        flag=world.flag, eval_set_key=f"{world.flag.key}-qa", required_pass_rate=0.8, actor=FACTORY_ACTOR
    )


def make_rollout(world: World | None = None, **overrides: Any) -> Rollout:
    world = world or make_world()
    fields: dict[str, Any] = {
        "flag": world.flag,
        "environment": world.environment,
        "candidate": world.candidate.number,
        "stages": STAGES,
        "policy": POLICY,
        "actor": FACTORY_ACTOR,
        "reason": "canary",
    }
    fields.update(overrides)
    return lifecycle.create_rollout(**fields)


def make_running_rollout(world: World | None = None, **overrides: Any) -> Rollout:
    rollout = make_rollout(world, **overrides)
    return lifecycle.start_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="go")


def rollout_in(state: str) -> Rollout:
    """A rollout brought to `state` through the services, as people and ticks bring it there."""
    world = make_world()
    if state == "draft":
        gate_the_flag(world)
        return make_rollout(world)
    if state == "ready":
        return make_rollout(world)
    rollout = make_running_rollout(world)
    verbs = {
        "running": None,
        "paused": lifecycle.pause_rollout,
        "promoted": None,
        "rolled_back": lifecycle.rollback_rollout,
        "aborted": lifecycle.abort_rollout,
    }
    if state == "promoted":
        for stage in (0, 1):
            lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="ok", stage=stage)
    elif state == "superseded":
        flag_services.clear_split(flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR)
        ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(seconds=1))
    elif verbs[state] is not None:
        verbs[state](rollout=rollout, actor=FACTORY_ACTOR, reason="setup")  # type: ignore[misc]
    rollout.refresh_from_db()
    assert rollout.state == state
    return rollout


def add_calls(
    rollout: Rollout,
    *,
    arm: str,
    calls: int,
    errors: int = 0,
    at: datetime | None = None,
    latency_ms: float | None = None,
) -> Rollup:
    """The rollup row ingest leaves for `calls` calls of one arm in one minute."""
    version = rollout.candidate.number if arm == "candidate" else rollout.baseline.number
    bucket = (at or timezone.now()).replace(second=0, microsecond=0)
    row = Rollup.objects.create(
        bucket=bucket,
        environment=rollout.environment,
        flag=rollout.flag,
        version=version,
        arm=arm,
        model="claude-sonnet-5-5",
        calls=calls,
        errors=errors,
        stop_end_turn=calls - errors,
        stop_none=errors,
    )
    if latency_ms is not None:
        RollupHistogram.objects.create(
            rollup=row,
            metric=RollupHistogram.Metric.LATENCY,
            bucket=histograms.bucket_of(latency_ms),
            n=calls,
        )
    return row


def add_scores(
    rollout: Rollout, *, arm: str, n: int, passed: int, errors: int = 0, at: datetime | None = None
) -> LiveScoreRollup:
    """The live-score rollup row live scoring leaves for one arm and scorer in one minute."""
    version = rollout.candidate.number if arm == "candidate" else rollout.baseline.number
    return LiveScoreRollup.objects.create(
        bucket=(at or timezone.now()).replace(second=0, microsecond=0),
        environment=rollout.environment,
        flag=rollout.flag,
        version=version,
        arm=arm,
        scorer="helpful",
        n=n,
        passed=passed,
        score_sum=float(passed),
        errors=errors,
    )


# Experiments


def make_experiment_world() -> World:
    """The world, plus v3 and v4: the baseline v1 and three possible candidates."""
    world = make_world()
    make_version(flag=world.flag, content={"model": "claude-sonnet-4-5", "max_tokens": 256})
    make_version(flag=world.flag, content={"model": "claude-haiku-4-5", "max_tokens": 256})
    return world


EXPERIMENT_POLICY: list[dict[str, Any]] = [
    {"metric": "api_error_rate", "margin": 0.01, "critical": True},
    {"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.02, "critical": True},
]
CANDIDATES: list[dict[str, Any]] = [
    {"version": 2, "weight": 2500, "name": "haiku"},
    {"version": 3, "weight": 2500, "name": "sonnet"},
    {"version": 4, "weight": 2500, "name": "short"},
]


def make_experiment(world: World | None = None, **overrides: Any) -> Experiment:
    world = world or make_experiment_world()
    fields: dict[str, Any] = {
        "flag": world.flag,
        "environment": world.environment,
        "baseline_weight": 2500,
        "candidates": CANDIDATES,
        "window_seconds": 3600,
        "policy": EXPERIMENT_POLICY,
        "actor": FACTORY_ACTOR,
        "reason": "which is cheapest?",
    }
    fields.update(overrides)
    return experiments.create_experiment(**fields)


def make_running_experiment(world: World | None = None, **overrides: Any) -> Experiment:
    experiment = make_experiment(world, **overrides)
    return experiments.start_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="go")


def add_arm_traffic(
    experiment: Experiment,
    *,
    arm: str,
    calls: int,
    passed: int,
    errors: int = 0,
    cost_usd: float = 0.0,
    at: datetime | None = None,
) -> None:
    """The telemetry and live-score rollup rows of one experiment arm in one minute."""
    version = experiment.arms.get(name=arm).version.number
    bucket = (at or timezone.now()).replace(second=0, microsecond=0)
    Rollup.objects.create(
        bucket=bucket,
        environment=experiment.environment,
        flag=experiment.flag,
        version=version,
        arm=arm,
        model="claude-sonnet-5-5",
        calls=calls,
        errors=errors,
        stop_end_turn=calls - errors,
        stop_none=errors,
        cost_micro_usd=round(cost_usd * calls * 1_000_000),
    )
    LiveScoreRollup.objects.create(
        bucket=bucket,
        environment=experiment.environment,
        flag=experiment.flag,
        version=version,
        arm=arm,
        scorer="helpful",
        n=calls,
        passed=passed,
        score_sum=float(passed),
        errors=0,
    )
