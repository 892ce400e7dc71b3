"""A rollout end to end: the `flagstaff` client sends a service's traffic for a flag, the real
`anthropic` SDK calls the fake Anthropic server, live scoring judges the sampled calls, and the
analysis tick promotes the candidate to everyone or rolls it back by itself.

The world is the demo's (demo/scenario.py): 15 % of questions are long; the regressing candidate
cuts their answers short, so it fails the live scorer on 15 % more calls; the healthy one answers
as the baseline does on another model.

Fast without weakening the statistics (the analysis, its levels and margins are the production
ones; only the plan and the driving are compressed):
- the plan's first stage is 10 % (then 50 %, then everyone), so a fifth of the users are in the
  analysis where a 1 % stage puts a fiftieth; no minimum durations;
- the client resolves locally, and only users in the canary or the control arm make a Claude
  call (the others tell the analysis nothing); calls go out from a thread pool (demo/traffic.py);
- telemetry goes in the client's batches, flushed after each round of traffic;
- after each round the test runs live scoring until every sample is scored and then the tick
  service (the function beat's task runs on the worker) at the rollout's next tick time, rather
  than waiting for beat.
Each round sends `PER_ARM` calls to each arm: at 300 judged calls per arm a 15-point drop shows
(lower bound about 3.5 points against the 2-point margin, at the critical level), while showing
the API error rate non-inferior within 1 point needs about 550 calls per arm with no errors, so a
healthy stage takes two rounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import anthropic
import pytest
from django.test import override_settings
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from controlplane.audit import Actor
from controlplane.services import create_api_token
from demo import scenario
from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from demo.traffic import Traffic
from evals.services import live_scoring
from flags import services as flag_services
from flags.models import Environment, Flag, FlagState, Split
from flagstaff import Flagstaff
from rollouts.models import Decision, Rollout, RolloutState
from rollouts.services import lifecycle, ticks
from telemetry.models import Incident, IncidentKind
from tests.flags.serving_helpers import fresh_store
from tests.rollouts.factories import without_checklist

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_store", "fast_stream")]
__all__ = ["fresh_store"]

ACTOR = Actor.system("tests")
PER_ARM = 300
MAX_ROUNDS = 6


@pytest.fixture
def fast_stream() -> Iterator[None]:
    with override_settings(FLAGSTAFF_STREAM_KEEPALIVE_SECONDS=0.2, FLAGSTAFF_STREAM_MAX_SECONDS=60):
        yield


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
    flag = flag_services.create_flag(key=scenario.FLAG, name="", surface=scenario.SURFACE, actor=ACTOR)
    for content, message in scenario.VERSIONS:
        flag_services.create_version(flag=flag, content=dict(content), message=message, actor=ACTOR)
    flag_services.publish_version(flag=flag, environment=production, number=1, actor=ACTOR)
    flag_services.set_flag_enabled(flag=flag, environment=production, enabled=True, actor=ACTOR)
    live_scoring.set_live_scoring_policy(
        flag=flag,
        scorer_specs=[scenario.SCORER],
        sample_rates={},
        daily_judge_budget_micro_usd=0,
        actor=ACTOR,
    )
    scenario.script(fake_anthropic)
    return flag


@pytest.fixture
def traffic(
    live_server: LiveServer,
    production: Environment,
    chat: Flag,
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
) -> Iterator[Traffic]:
    token = create_api_token(
        name="support-service", scopes=["resolve", "telemetry"], environment=production, actor=ACTOR
    )
    with (
        anthropic.Anthropic(api_key=DEFAULT_API_KEY, base_url=fake_anthropic.base_url, max_retries=0) as sdk,
        Flagstaff(
            url=live_server.url,
            token=token.secret,
            environment="production",
            cache_path=tmp_path / "production.json",
            poll_interval=60.0,
            anthropic_client=sdk,
            telemetry=True,
            sample_rates={scenario.FLAG: 1.0},
        ) as client,
        Traffic(client, threads=8) as traffic,
    ):
        yield traffic


def score_everything() -> None:
    while live_scoring.score_new_samples().claimed:
        pass


def run_rollout(traffic: Traffic, production: Environment, candidate: int) -> Rollout:
    """Create and start the rollout, then rounds of traffic, scoring and a tick until it settles."""
    rollout = lifecycle.create_rollout(
        flag=Flag.objects.get(key=scenario.FLAG),
        environment=production,
        candidate=candidate,
        stages=scenario.stages(min_duration_seconds=0, min_per_arm=100),
        policy=scenario.POLICY,
        tick_interval_seconds=1,
        actor=ACTOR,
        reason="canary",
    )
    rollout = lifecycle.start_rollout(rollout=rollout, actor=ACTOR, reason="canary")
    client = traffic.client
    for _ in range(MAX_ROUNDS):
        assert client.wait_for_revision(Environment.objects.get(pk=production.pk).revision, timeout=10)
        traffic.send_until(PER_ARM)
        assert client.telemetry is not None
        assert client.telemetry.flush(timeout=30)
        score_everything()
        rollout.refresh_from_db()
        assert rollout.next_tick_at is not None
        # The tick is due at next_tick_at (at most a second away): run it for that moment.
        now = max(timezone.now(), rollout.next_tick_at) + timedelta(milliseconds=1)
        assert ticks.tick_rollout(rollout_id=rollout.pk, now=now) is not None
        rollout.refresh_from_db()
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
