"""A rollout end to end: the `flagstaff` client sends a service's traffic for a flag, the real
`anthropic` SDK calls the fake Anthropic server, live scoring judges the sampled calls, and the
analysis tick promotes the candidate to everyone or rolls it back by itself.

The schedule is compressed and driven deterministically: no minimum durations, one-second tick
intervals, and after each batch of traffic the test flushes the client's telemetry, runs live
scoring until every sample is scored, and calls the tick service (the function the beat task
runs on the worker). Units outside the canary and control bands are served the baseline and
never enter the analysis: the test resolves them (locally, as the client does) but spends no
Claude call on them.

The outputs are scripted: 15 % of the questions are "long" and their answer is long; the
scorer passes an answer that ends with its conclusion. The baseline answers everything whole;
a candidate with a smaller max_tokens cuts the long answers short, so it fails the scorer on
15 % more calls; a candidate on another model with the same answers is healthy.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from django.test import override_settings
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from controlplane.audit import Actor
from controlplane.services import create_api_token
from evals.services import live_scoring
from flags import services as flag_services
from flags.models import Environment, Flag, FlagState, Split
from flagstaff import Flagstaff
from rollouts.models import Decision, Rollout, RolloutState
from rollouts.services import lifecycle, ticks
from telemetry.models import Incident, IncidentKind
from tests.fakes.anthropic import DEFAULT_API_KEY, FakeAnthropic
from tests.flags.serving_helpers import fresh_store

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_store", "fast_stream")]
__all__ = ["fresh_store"]

ACTOR = Actor.system("tests")
FLAG = "support-chat"
BASELINE: dict[str, Any] = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 1024,
    "system": "You answer questions about our product.",
}
TRUNCATING = BASELINE | {"max_tokens": 60}  # 240 characters: the long answers are cut
HEALTHY = BASELINE | {"model": "claude-haiku-4-5"}
CONCLUSION = "ANSWER: done."
LONG_ANSWER = "Here is the whole procedure, step by step. " * 15 + CONCLUSION
SCORER = {"name": "regex", "key": "complete", "params": {"pattern": r"ANSWER: done\.$"}}
STAGE = {
    "min_duration_seconds": 0,
    "max_duration_seconds": 3600,
    "min_units_per_arm": 100,
    "min_judged_per_arm": 100,
}
STAGES = [{"weight": 100, **STAGE}, {"weight": 1000, **STAGE}, {"weight": 10_000}]
POLICY = [
    {"metric": "live_pass_rate", "scorer": "complete", "margin": 0.02, "critical": True},
    {"metric": "api_error_rate", "margin": 0.01, "critical": True},
]
CALLS_PER_ARM = 150  # per batch: one tick after each
MAX_BATCHES = 12


@pytest.fixture
def fast_stream() -> Iterator[None]:
    with override_settings(FLAGSTAFF_STREAM_KEEPALIVE_SECONDS=0.2, FLAGSTAFF_STREAM_MAX_SECONDS=60):
        yield


@pytest.fixture
def production() -> Environment:
    return flag_services.create_environment(key="production", name="Production", actor=ACTOR, protected=False)


@pytest.fixture
def chat(production: Environment, fake_anthropic: FakeAnthropic) -> Flag:
    """v1 serving in production; v2 cuts long answers short; v3 answers as v1 on another model."""
    flag = flag_services.create_flag(key=FLAG, name="", surface="chat", actor=ACTOR)
    for content in (BASELINE, TRUNCATING, HEALTHY):
        flag_services.create_version(flag=flag, content=dict(content), message="", actor=ACTOR)
    flag_services.publish_version(flag=flag, environment=production, number=1, actor=ACTOR)
    live_scoring.set_live_scoring_policy(
        flag=flag, scorer_specs=[SCORER], sample_rates={}, daily_judge_budget_micro_usd=0, actor=ACTOR
    )
    fake_anthropic.script_reply("[long]", LONG_ANSWER)
    fake_anthropic.script_reply("[short]", CONCLUSION)
    return flag


@pytest.fixture
def client(
    live_server: LiveServer,
    production: Environment,
    chat: Flag,
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
) -> Iterator[Flagstaff]:
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
            sample_rates={FLAG: 1.0},
        ) as flagstaff,
    ):
        yield flagstaff


_units = itertools.count()


def send_batch(client: Flagstaff) -> None:
    """CALLS_PER_ARM calls in each of the canary and control bands, 15 % of them long questions."""
    sent = {"candidate": 0, "control": 0}
    while min(sent.values()) < CALLS_PER_ARM:
        unit = next(_units)
        context = {"targetingKey": f"user-{unit}"}
        arm = client.resolve(FLAG, context).arm
        if arm not in sent or sent[arm] >= CALLS_PER_ARM:
            continue
        kind = "[long]" if unit % 20 < 3 else "[short]"
        client.messages.create(
            flag=FLAG, context=context, messages=[{"role": "user", "content": f"{kind} question {unit}"}]
        )
        sent[arm] += 1


def score_everything() -> None:
    while live_scoring.score_new_samples().claimed:
        pass


def run_rollout(client: Flagstaff, production: Environment, candidate: int) -> Rollout:
    """Create and start the rollout, then traffic, scoring and a tick until it settles."""
    rollout = lifecycle.create_rollout(
        flag=Flag.objects.get(key=FLAG),
        environment=production,
        candidate=candidate,
        stages=STAGES,
        policy=POLICY,
        tick_interval_seconds=1,
        actor=ACTOR,
        reason="canary",
    )
    rollout = lifecycle.start_rollout(rollout=rollout, actor=ACTOR, reason="canary")
    for _ in range(MAX_BATCHES):
        assert client.wait_for_revision(Environment.objects.get(pk=production.pk).revision, timeout=10)
        send_batch(client)
        assert client.telemetry is not None
        assert client.telemetry.flush(timeout=30)
        score_everything()
        rollout.refresh_from_db()
        assert rollout.next_tick_at is not None
        time.sleep(max(0.0, (rollout.next_tick_at - timezone.now()).total_seconds()))
        assert ticks.tick_rollout(rollout_id=rollout.pk) is not None
        rollout.refresh_from_db()
        if rollout.state != RolloutState.RUNNING:
            return rollout
    raise AssertionError(f"rollout {rollout.pk} still running after {MAX_BATCHES} batches")


def test_rollout__candidate_fails_the_live_scorer_15_points_more__rolled_back_by_itself_with_why(
    client: Flagstaff, production: Environment, chat: Flag
) -> None:
    rollout = run_rollout(client, production, candidate=2)

    decision = Decision.objects.filter(rollout=rollout).order_by("-tick").first()
    assert decision is not None
    assert (rollout.state, decision.action, decision.reason) == (
        "rolled_back",
        "rollback",
        "critical_regression",
    )
    assert rollout.stage_index in (0, 1)  # the 1 % or the 10 % stage
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
    assert client.wait_for_revision(Environment.objects.get(pk=production.pk).revision, timeout=10)
    served = {client.resolve(FLAG, {"targetingKey": f"user-{unit}"}).version for unit in range(500)}
    assert served == {1}


def test_rollout__healthy_candidate__promoted_to_everyone_and_the_split_cleared(
    client: Flagstaff, production: Environment, chat: Flag
) -> None:
    rollout = run_rollout(client, production, candidate=3)

    promotions = list(
        Decision.objects.filter(rollout=rollout, action="promote")
        .order_by("tick")
        .values_list("stage__index", "reason")
    )
    assert rollout.state == "promoted"
    assert promotions == [(0, "non_inferior"), (1, "non_inferior")]
    assert FlagState.objects.filter(flag=chat, environment=production, serving_version__number=3).exists()
    assert not Split.objects.active().exists()
    assert client.wait_for_revision(Environment.objects.get(pk=production.pk).revision, timeout=10)
    resolved = client.resolve(FLAG, {"targetingKey": "user-1"})
    assert (resolved.version, resolved.reason) == (3, "STATIC")
