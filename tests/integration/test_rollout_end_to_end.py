"""A rollout end to end: the `flagstaff` client sends a service's traffic for a flag, the real
`anthropic` SDK calls the fake Anthropic server, live scoring judges the sampled calls, and the
analysis tick promotes the candidate to everyone or rolls it back by itself.

The world is the demo's (demo/scenario.py): 15 % of questions are long; the regressing candidate
cuts their answers short, so it fails the live scorer on 15 % more calls; the healthy one answers
as the baseline does on another model. How the plan and the driving are compressed without
weakening the statistics: tests/rollouts/live_traffic.py.
"""

from __future__ import annotations

import pytest

from controlplane.audit import Actor
from demo import scenario, seed
from demo.fake_anthropic import FakeAnthropic
from demo.traffic import Traffic
from flags import services as flag_services
from flags.models import Environment, Flag, FlagState, Split
from rollouts.models import Decision, Rollout, RolloutState
from rollouts.services import lifecycle
from telemetry.models import Incident, IncidentKind
from tests.flags.serving_helpers import fresh_store
from tests.rollouts.factories import without_checklist
from tests.rollouts.live_traffic import MAX_ROUNDS, STAGES, fast_stream, run_round, traffic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_store", "fast_stream")]
__all__ = ["fast_stream", "fresh_store", "traffic"]

ACTOR = Actor.system("tests")


@pytest.fixture
def production() -> Environment:
    environment = flag_services.create_environment(
        key="production", name="Production", actor=ACTOR, protected=False
    )
    # The analysis is under test here, not the deploy checklist (tests/rollouts/test_checklist.py).
    return without_checklist(environment)


@pytest.fixture
def chat(production: Environment, fake_anthropic: FakeAnthropic) -> Flag:
    """v1 serving in production; v2 cuts long answers short; v3 answers as v1 on another model."""
    flag = seed.support_chat([production], actor=ACTOR, reason="end to end")
    scenario.script(fake_anthropic)
    return flag


def run_rollout(traffic: Traffic, production: Environment, candidate: int) -> Rollout:
    """Create and start the rollout, then rounds of traffic, scoring and a tick until it settles."""
    rollout = lifecycle.create_rollout(
        flag=Flag.objects.get(key=scenario.FLAG),
        environment=production,
        candidate=candidate,
        stages=STAGES,
        policy=scenario.POLICY,
        tick_interval_seconds=1,
        actor=ACTOR,
        reason="canary",
    )
    rollout = lifecycle.start_rollout(rollout=rollout, actor=ACTOR, reason="canary")
    for _ in range(MAX_ROUNDS):
        rollout = run_round(traffic, rollout)
        if rollout.state != RolloutState.RUNNING:
            return rollout
    raise AssertionError(f"rollout {rollout.pk} still running after {MAX_ROUNDS} rounds")


def test_rollout__candidate_fails_the_live_scorer_15_points_more__rolled_back_by_itself_with_why(
    traffic: Traffic, production: Environment, chat: Flag
) -> None:
    rollout = run_rollout(traffic, production, candidate=scenario.REGRESSING_VERSION)

    decision = Decision.objects.filter(rollout=rollout).order_by("-tick").first()
    assert decision is not None
    assert (rollout.state, decision.action, decision.reason) == (
        "rolled_back",
        "rollback",
        "critical_regression",
    )
    assert rollout.stage_index == 0  # the 10 % stage
    assert decision.explanation.startswith("rolled back: live pass rate (complete) ")
    assert "vs control 100.0 %" in decision.explanation
    assert "beyond the 2-point margin" in decision.explanation
    canary = decision.inputs["canary"]["metrics"]["live_pass_rate:complete"]
    assert 0.75 < canary["total"] / canary["n"] < 0.92  # the cut answers failed the scorer
    assert decision.inputs["live_scoring"]["scorers"] == {
        "complete": {"scorer": "regex", "scorer_version": 1}
    }
    assert Incident.objects.filter(kind=IncidentKind.ROLLOUT_ROLLED_BACK).count() == 1
    assert not Split.objects.active().exists()
    client = traffic.client
    assert client.wait_for_revision(Environment.objects.get(pk=production.pk).revision, timeout=10)
    served = {client.resolve(scenario.FLAG, {"targetingKey": f"user-{unit}"}).version for unit in range(500)}
    assert served == {scenario.BASELINE_VERSION}


def test_rollout__healthy_candidate__promoted_to_everyone_and_the_split_cleared(
    traffic: Traffic, production: Environment, chat: Flag
) -> None:
    rollout = run_rollout(traffic, production, candidate=scenario.HEALTHY_VERSION)

    promotions = list(
        Decision.objects.filter(rollout=rollout, action="promote")
        .order_by("tick")
        .values_list("stage__index", "reason")
    )
    assert rollout.state == "promoted"
    assert promotions == [(0, "non_inferior"), (1, "non_inferior")]
    assert FlagState.objects.filter(
        flag=chat, environment=production, serving_version__number=scenario.HEALTHY_VERSION
    ).exists()
    assert not Split.objects.active().exists()
    client = traffic.client
    assert client.wait_for_revision(Environment.objects.get(pk=production.pk).revision, timeout=10)
    resolved = client.resolve(scenario.FLAG, {"targetingKey": "user-1"})
    assert (resolved.version, resolved.reason) == (scenario.HEALTHY_VERSION, "STATIC")
