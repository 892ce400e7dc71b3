"""A flag serving v1 with a candidate v2, and rollouts of it, for the rollouts tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flags import services as flag_services
from flags.models import ConfigVersion, Environment, Flag
from rollouts.models import Rollout
from rollouts.services import lifecycle
from tests.factories import FACTORY_ACTOR, make_environment, make_flag, make_version

CANDIDATE_CONTENT = {"model": "claude-haiku-4-5", "max_tokens": 512, "cache_control": {"type": "ephemeral"}}
# Two analysed stages and the promotion, with the analysis tests' small minimums.
STAGES: list[dict[str, Any]] = [
    {"weight": 100, "min_duration_seconds": 0, "max_duration_seconds": 3600, "min_units_per_arm": 50, "min_judged_per_arm": 0},
    {"weight": 1000, "min_duration_seconds": 0, "max_duration_seconds": 3600, "min_units_per_arm": 50, "min_judged_per_arm": 0},
    {"weight": 10000},
]


@dataclass
class World:
    environment: Environment
    flag: Flag
    baseline: ConfigVersion
    candidate: ConfigVersion


def make_world(**flag_fields: Any) -> World:
    environment = make_environment()
    flag = make_flag(**flag_fields)
    baseline = make_version(flag=flag)
    candidate = make_version(flag=flag, content=dict(CANDIDATE_CONTENT))
    flag_services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)
    return World(environment, flag, baseline, candidate)


def make_rollout(world: World | None = None, **overrides: Any) -> Rollout:
    world = world or make_world()
    fields: dict[str, Any] = {
        "flag": world.flag,
        "environment": world.environment,
        "candidate": world.candidate.number,
        "stages": STAGES,
        "actor": FACTORY_ACTOR,
        "reason": "canary",
    }
    fields.update(overrides)
    return lifecycle.create_rollout(**fields)


def make_running_rollout(world: World | None = None, **overrides: Any) -> Rollout:
    rollout = make_rollout(world, **overrides)
    return lifecycle.start_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="go")
