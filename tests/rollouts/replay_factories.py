"""A running rollout that opted in to paired replay, and control-arm samples for it to replay."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from flags import services as flag_services
from flags.models import Environment
from rollouts.models import Rollout
from telemetry.services.ingest import ingest_calls
from tests.evals.live_factories import make_policy
from tests.factories import FACTORY_ACTOR, make_environment, make_flag, make_version
from tests.rollouts.factories import World, make_running_rollout, without_checklist
from tests.telemetry.call_factories import flag_state_for, make_record, seed_prices

_sequence = itertools.count(1)
PAIRED_POLICY: list[dict[str, Any]] = [
    {"metric": "api_error_rate", "margin": 0.01, "critical": True},
    {"metric": "paired_pass_rate", "scorer": "says-ok", "margin": 0.02, "critical": True},
]


CANDIDATE = {"model": "claude-sonnet-5-5", "max_tokens": 256, "system": "Answer briefly."}


def make_replay_world(candidate_content: dict[str, Any] | None = None) -> World:
    """The rollouts world with the live scorer `says-ok` (contains "ok") on the flag, and a
    candidate of a model the fake serves."""
    seed_prices()
    environment = without_checklist(make_environment())
    flag = make_flag()
    baseline = make_version(flag=flag)
    candidate = make_version(flag=flag, content=candidate_content or CANDIDATE)
    flag_services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)
    world = World(environment, flag, baseline, candidate)
    make_policy(world.baseline)
    return world


def make_replaying_rollout(world: World, **overrides: Any) -> Rollout:
    return make_running_rollout(world, policy=PAIRED_POLICY, **overrides)


def ingest_control(
    environment: Environment, rollout: Rollout, *, outputs: list[str], at: datetime, arm: str = "control"
) -> list[str]:
    """One sampled control-arm call per output, its prompt carrying a marker of its own (for the
    fake to script the candidate's answer to it); returns the markers."""
    markers = [f"case-{next(_sequence):06d}" for _ in outputs]
    version = rollout.baseline if arm == "control" else rollout.candidate
    records = [
        make_record(
            request_id=f"replay_{marker}",
            timestamp=at.isoformat(),
            flag_state=flag_state_for(environment, version, arm=arm),
            sample={
                "input": [{"role": "user", "content": f"question {marker}"}],
                "output": [{"type": "text", "text": output}],
            },
        )
        for marker, output in zip(markers, outputs, strict=True)
    ]
    result = ingest_calls(records=records, received_at=at)
    assert result.samples_stored == len(records), result
    return markers
