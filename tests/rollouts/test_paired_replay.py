"""Paired replay: control-arm samples replayed through the candidate on the fake Anthropic API,
both answers scored, the pairs' rollups, the budget, backing off, and the tick's paired evidence."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from demo.fake_anthropic import FakeAnthropic
from rollouts.arm_aggregates import read_stage_aggregates
from rollouts.models import PairedReplay, PairedReplayRollup, ReplayPolicy, ReplaySpend, ReplayState
from rollouts.services import paired_replay, ticks
from tests.evals.run_factories import anthropic_at
from tests.rollouts.factories import add_calls
from tests.rollouts.replay_factories import ingest_control, make_replay_world, make_replaying_rollout

pytestmark = pytest.mark.django_db


@pytest.fixture
def replaying(fake_anthropic: FakeAnthropic):
    world = make_replay_world()
    rollout = make_replaying_rollout(world)
    with anthropic_at(fake_anthropic, FLAGSTAFF_PAIRED_REPLAY_MAX_ATTEMPTS=2):
        yield world, rollout


def _script(fake: FakeAnthropic, markers: list[str], *, passing: int) -> None:
    """The candidate answers "ok" (passes) to the first `passing` markers, "no" to the rest."""
    for index, marker in enumerate(markers):
        fake.script_reply(marker, "ok" if index < passing else "no")


def test_replay__candidate_fails_three_of_ten__rollup_holds_the_differences(replaying, fake_anthropic):
    world, rollout = replaying
    now = timezone.now()
    markers = ingest_control(world.environment, rollout, outputs=["ok"] * 10, at=now)
    _script(fake_anthropic, markers, passing=7)

    report = paired_replay.replay_control_samples(now=now)

    assert (report.claimed, report.paired, report.errors) == (10, 10, 0)
    row = PairedReplayRollup.objects.get()
    assert (row.n, row.d_sum, row.d_sq_sum, row.errors) == (10, -3, 3, 0)
    assert (row.baseline_version, row.candidate_version, row.scorer) == (1, 2, "says-ok")
    assert all(fake_anthropic.times_answered(marker) == 1 for marker in markers)
    assert set(PairedReplay.objects.values_list("state", flat=True)) == {ReplayState.DONE}
    assert ReplaySpend.objects.get(rollout=rollout).calls == 10


def test_replay__control_failed_candidate_passed__positive_difference(replaying, fake_anthropic):
    world, rollout = replaying
    now = timezone.now()
    markers = ingest_control(world.environment, rollout, outputs=["no", "ok"], at=now)
    _script(fake_anthropic, markers, passing=2)

    paired_replay.replay_control_samples(now=now)

    row = PairedReplayRollup.objects.get()
    assert (row.n, row.d_sum, row.d_sq_sum) == (2, 1, 1)


def test_replay__second_tick__replays_nothing_again(replaying, fake_anthropic):
    world, rollout = replaying
    now = timezone.now()
    markers = ingest_control(world.environment, rollout, outputs=["ok"] * 3, at=now)
    paired_replay.replay_control_samples(now=now)

    report = paired_replay.replay_control_samples(now=now + timedelta(minutes=1))

    assert report.claimed == 0
    assert [fake_anthropic.times_answered(marker) for marker in markers] == [1, 1, 1]
    assert PairedReplayRollup.objects.get().n == 3


def test_replay__candidate_arm_samples__never_claimed(replaying):
    world, rollout = replaying
    ingest_control(world.environment, rollout, outputs=["ok"] * 2, at=timezone.now(), arm="candidate")

    assert paired_replay.replay_control_samples().claimed == 0


def test_replay__rollout_without_policy__samples_left_alone(fake_anthropic):
    world = make_replay_world()
    rollout = make_replaying_rollout(world)
    ReplayPolicy.objects.filter(rollout=rollout).update(enabled=False)
    ingest_control(world.environment, rollout, outputs=["ok"], at=timezone.now())

    with anthropic_at(fake_anthropic):
        assert paired_replay.replay_control_samples().claimed == 0
    assert not PairedReplay.objects.exists()


def test_replay__sample_rate_zero__skipped_never_sent(replaying, fake_anthropic):
    world, rollout = replaying
    ReplayPolicy.objects.filter(rollout=rollout).update(sample_rate=0.0)
    markers = ingest_control(world.environment, rollout, outputs=["ok"] * 2, at=timezone.now())

    report = paired_replay.replay_control_samples()

    assert (report.skipped, report.paired) == (2, 0)
    assert fake_anthropic.times_answered(markers[0]) == 0
    assert not PairedReplayRollup.objects.exists()


def test_replay__call_budget_runs_out__stops_says_so_and_leaves_the_rest(replaying, fake_anthropic, caplog):
    world, rollout = replaying
    ReplayPolicy.objects.filter(rollout=rollout).update(daily_call_budget=2)
    now = timezone.now()
    markers = ingest_control(world.environment, rollout, outputs=["ok"] * 5, at=now)

    with caplog.at_level(logging.WARNING, logger="rollouts.services.paired_replay"):
        report = paired_replay.replay_control_samples(now=now)
        later = paired_replay.replay_control_samples(now=now + timedelta(minutes=1))

    assert (report.paired, report.released, report.budget_stopped) == (2, 3, {rollout.pk})
    assert sum(fake_anthropic.times_answered(marker) for marker in markers) == 2
    assert PairedReplay.objects.count() == 2  # the other three wait for tomorrow's budget
    assert later.claimed == 0
    assert "daily budget is spent" in caplog.text


def test_replay__usd_budget_spent__nothing_claimed(replaying, fake_anthropic):
    world, rollout = replaying
    ReplaySpend.objects.create(rollout=rollout, day=timezone.now().date(), calls=0, micro_usd=5_000_000)
    ingest_control(world.environment, rollout, outputs=["ok"], at=timezone.now())

    report = paired_replay.replay_control_samples()

    assert (report.claimed, report.budget_stopped) == (0, {rollout.pk})


def test_replay__priced_with_the_price_table(replaying, fake_anthropic):
    world, rollout = replaying
    ingest_control(world.environment, rollout, outputs=["ok"], at=timezone.now())

    report = paired_replay.replay_control_samples()

    replay = PairedReplay.objects.get()
    assert replay.cost_micro_usd > 0
    assert ReplaySpend.objects.get(rollout=rollout).micro_usd == replay.cost_micro_usd == report.micro_usd


def test_replay__api_overloaded__backs_off_gives_the_claim_back_rollout_untouched(replaying, fake_anthropic):
    world, rollout = replaying
    markers = ingest_control(world.environment, rollout, outputs=["ok"], at=timezone.now())
    fake_anthropic.fail_next(529, error_type="overloaded_error", retry_after=0, times=2)

    report = paired_replay.replay_control_samples()

    assert (report.paired, report.released, report.backed_off) == (0, 1, {rollout.pk})
    assert not PairedReplay.objects.exists()
    rollout.refresh_from_db()
    assert rollout.state == "running"
    # The next tick replays it.
    _script(fake_anthropic, markers, passing=1)
    assert paired_replay.replay_control_samples().paired == 1


def test_replay__stale_claim__retaken_fresh_claim_left_alone(replaying, fake_anthropic):
    world, rollout = replaying
    now = timezone.now()
    ingest_control(world.environment, rollout, outputs=["ok", "ok"], at=now)
    paired_replay._claim(rollout_ids=[rollout.pk], now=now - timedelta(hours=1), limit=1)  # a dead worker
    paired_replay._claim(rollout_ids=[rollout.pk], now=now, limit=1)  # a worker busy right now

    report = paired_replay.replay_control_samples(now=now + timedelta(seconds=5))

    assert report.paired == 1
    assert PairedReplay.objects.filter(state=ReplayState.CLAIMED).count() == 1


def test_replay__tools__custom_kept_server_and_mcp_dropped_in_the_request(fake_anthropic):
    content = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 256,
        "tools": [
            {"name": "lookup_order", "input_schema": {"type": "object"}},
            {"type": "web_search_20260318", "name": "web_search"},
            {"type": "mcp_toolset", "mcp_server_name": "crm"},
        ],
        "mcp_servers": [{"type": "url", "name": "crm", "url": "https://crm.example/mcp"}],
        "tool_choice": {"type": "auto"},
    }
    world = make_replay_world(candidate_content=content)
    rollout = make_replaying_rollout(world)
    ingest_control(world.environment, rollout, outputs=["ok"], at=timezone.now())

    with anthropic_at(fake_anthropic):
        assert paired_replay.replay_control_samples().paired == 1

    (sent,) = [r.body for r in fake_anthropic.requests if r.path.startswith("/v1/messages")]
    assert [tool["name"] for tool in sent["tools"]] == ["lookup_order"]
    assert "mcp_servers" not in sent
    assert "anthropic-beta" not in fake_anthropic.requests[-1].headers


def test_read_stage_aggregates__paired_rows__canary_holds_the_differences(replaying, fake_anthropic):
    world, rollout = replaying
    now = timezone.now()
    markers = ingest_control(world.environment, rollout, outputs=["ok"] * 4, at=now)
    _script(fake_anthropic, markers, passing=3)
    paired_replay.replay_control_samples(now=now)
    guardrails = list(rollout.guardrails.all())
    started = rollout.stages.get(index=0).started_at

    aggregates = read_stage_aggregates(
        rollout=rollout, guardrails=guardrails, since=started, until=now + timedelta(minutes=2)
    )
    before_stage = read_stage_aggregates(
        rollout=rollout,
        guardrails=guardrails,
        since=now + timedelta(minutes=2),
        until=now + timedelta(minutes=3),
    )

    paired = aggregates.canary.metric("paired_pass_rate:says-ok")
    assert (paired.n, paired.total, paired.total_sq) == (4, -1, 1)
    assert aggregates.control.metric("paired_pass_rate:says-ok").n == 0
    assert before_stage.canary.metric("paired_pass_rate:says-ok").n == 0


def test_tick__candidate_fails_a_third_of_paired_replays__rolled_back_on_paired_evidence(
    replaying, fake_anthropic
):
    world, rollout = replaying
    now = timezone.now()
    markers = ingest_control(world.environment, rollout, outputs=["ok"] * 60, at=now)
    _script(fake_anthropic, markers, passing=40)
    paired_replay.replay_control_samples(limit=60, now=now)
    add_calls(rollout, arm="candidate", calls=100, at=now + timedelta(minutes=1))
    add_calls(rollout, arm="control", calls=40, at=now + timedelta(minutes=1))  # with the 60 sampled: 100

    result = ticks.tick_rollout(rollout_id=rollout.pk, now=now + timedelta(minutes=2))

    assert result is not None
    assert (result.action, result.applied) == ("rollback", True)
    decision = rollout.decisions.get()
    assert decision.reason == "critical_regression"
    assert "on 60 paired replays, candidate worse by 0.333 beyond the 0.02 margin" in decision.explanation
    assert "(paired evidence)" in decision.explanation


def test_replay__no_api_key__nothing_claimed_and_says_why(replaying, caplog):
    world, rollout = replaying
    ingest_control(world.environment, rollout, outputs=["ok"], at=timezone.now())

    with (
        override_settings(ANTHROPIC_API_KEY=""),
        caplog.at_level(logging.WARNING, logger="rollouts.services.paired_replay"),
    ):
        report = paired_replay.replay_control_samples()

    assert report.claimed == 0
    assert not PairedReplay.objects.exists()
    assert "ANTHROPIC_API_KEY is not set" in caplog.text
