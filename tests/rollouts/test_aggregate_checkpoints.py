"""A tick's checkpointed per-arm sums against a full re-sum of the rollups from the window's
first minute, on data whose rows keep changing after their minute (late telemetry, live
scoring catching up)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from evals.models import LiveScoreRollup
from rollouts.aggregate_checkpoints import settled_before
from rollouts.arm_aggregates import StageAggregates, Window, read_many_stage_aggregates
from rollouts.models import AggregateCheckpoint, Rollout
from telemetry import histograms
from telemetry.models.calls import Rollup, RollupHistogram
from tests.rollouts.factories import make_running_rollout

pytestmark = pytest.mark.django_db

LAG_MINUTES = 5
POLICY = [
    {"metric": "api_error_rate", "margin": 0.01},
    {"metric": "max_tokens_rate", "margin": 0.01},
    {"metric": "latency_p95", "margin": 100},
    {"metric": "ttft_p95", "margin": 100},
    {"metric": "cost_per_call", "margin": 0.05, "relative_margin": True},
    {"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.02},
]
ARMS = ("candidate", "control")


@pytest.fixture(autouse=True)
def _lag(settings: pytest.FixtureRequest) -> None:
    settings.FLAGSTAFF_ROLLOUT_SETTLED_MINUTES = LAG_MINUTES  # type: ignore[attr-defined]


class _Discard(Exception):
    pass


def full_resum(window: Window) -> StageAggregates:
    """What the tick would read with no checkpoint at all, leaving the checkpoints as they are."""
    found: StageAggregates | None = None
    try:
        with transaction.atomic():
            AggregateCheckpoint.objects.all().delete()
            found = read_many_stage_aggregates([window])[window.key]
            raise _Discard
    except _Discard:
        pass
    assert found is not None
    return found


def tick_read(window: Window) -> StageAggregates:
    return read_many_stage_aggregates([window])[window.key]


class Traffic:
    """Writes rollup rows as ingest and live scoring do: a row per minute and arm, incremented
    in place when more of that minute's calls or scores arrive."""

    def __init__(self, rollout: Rollout, seed: int) -> None:
        self.rollout = rollout
        self.random = random.Random(seed)

    def key(self, arm: str, minute: datetime) -> dict[str, Any]:
        """The columns that identify an arm's rollup row of one minute."""
        version = self.rollout.candidate.number if arm == "candidate" else self.rollout.baseline.number
        rollout = self.rollout
        return {
            "bucket": minute,
            "environment": rollout.environment,
            "flag": rollout.flag,
            "version": version,
            "arm": arm,
        }

    def calls(self, *, arm: str, minute: datetime) -> None:
        calls = self.random.randint(1, 40)
        errors = self.random.randint(0, calls // 5)
        max_tokens = self.random.randint(0, (calls - errors) // 4)
        costs = [self.random.randint(1_000, 100_000_000) for _ in range(calls)]
        row, _ = Rollup.objects.get_or_create(**self.key(arm, minute), model="claude-sonnet-5-5")
        Rollup.objects.filter(pk=row.pk).update(
            calls=F("calls") + calls,
            errors=F("errors") + errors,
            stop_none=F("stop_none") + errors,
            stop_max_tokens=F("stop_max_tokens") + max_tokens,
            stop_end_turn=F("stop_end_turn") + calls - errors - max_tokens,
            cost_micro_usd=F("cost_micro_usd") + sum(costs),
            cost_sq_micro_usd2=F("cost_sq_micro_usd2") + sum(cost * cost for cost in costs),
        )
        for metric in (RollupHistogram.Metric.LATENCY, RollupHistogram.Metric.TTFT):
            for _ in range(2):
                bucket = histograms.bucket_of(self.random.uniform(50, 5_000))
                cell, _ = RollupHistogram.objects.get_or_create(rollup=row, metric=metric, bucket=bucket)
                RollupHistogram.objects.filter(pk=cell.pk).update(n=F("n") + self.random.randint(1, 9))

    def scores(self, *, arm: str, minute: datetime) -> None:
        n = self.random.randint(1, 10)
        errors = self.random.randint(0, 1)
        passed = self.random.randint(0, n - errors)
        row, _ = LiveScoreRollup.objects.get_or_create(**self.key(arm, minute), scorer="helpful")
        LiveScoreRollup.objects.filter(pk=row.pk).update(
            n=F("n") + n,
            passed=F("passed") + passed,
            errors=F("errors") + errors,
            score_sum=F("score_sum") + passed,
        )


def minutes_of(start: datetime, count: int) -> Iterator[tuple[int, datetime]]:
    for index in range(count):
        yield index, start + timedelta(minutes=index)


def test_read__every_tick_with_late_rows_in_unsettled_minutes__same_as_a_full_resum() -> None:
    rollout = make_running_rollout(policy=POLICY)
    traffic = Traffic(rollout, seed=15)
    # A stage that began mid-minute, read by a tick every minute for 25 minutes.
    began = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1, seconds=-20)
    first = began.replace(second=0)
    guardrails = list(rollout.guardrails.all())
    for index, minute in minutes_of(first, 25):
        for arm in ARMS:
            traffic.calls(arm=arm, minute=minute)
        # Late rows: calls and scores of minutes not yet settled at this tick arrive now.
        now = minute + timedelta(seconds=30)
        unsettled = settled_before(now)
        for _ in range(3):
            late = first + timedelta(minutes=traffic.random.randint(0, index))
            if late >= unsettled:
                arm = traffic.random.choice(ARMS)
                traffic.calls(arm=arm, minute=late)
                traffic.scores(arm=arm, minute=late)
        window = Window.of_rollout(rollout, guardrails, began, now)

        assert tick_read(window) == full_resum(window), f"tick at minute {index}"

    checkpoint = AggregateCheckpoint.objects.get(flag=rollout.flag, environment=rollout.environment)
    assert checkpoint.settled_until == first + timedelta(minutes=24 - LAG_MINUTES)


def test_read__three_windows_of_other_ages_read_together__each_same_as_its_full_resum() -> None:
    rollouts = [make_running_rollout(policy=POLICY) for _ in range(3)]
    traffics = [Traffic(rollout, seed=20 + index) for index, rollout in enumerate(rollouts)]
    first = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    # Stages that began at other minutes, so that one statement reads other minutes per flag;
    # every flag also has rows before its stage began, which its window must leave out.
    began = [first + timedelta(minutes=offset, seconds=10) for offset in (3, 0, 9)]
    guardrails = [list(rollout.guardrails.all()) for rollout in rollouts]
    for index, minute in minutes_of(first, 15):
        for traffic in traffics:
            for arm in ARMS:
                traffic.calls(arm=arm, minute=minute)
                traffic.scores(arm=arm, minute=minute)
        now = minute + timedelta(seconds=30)
        if index == 10:
            # One window without its checkpoint (a deploy, an edit): read from its first minute
            # in the same statement as the others' few minutes after theirs.
            AggregateCheckpoint.objects.filter(flag=rollouts[1].flag).delete()
        windows = [
            Window.of_rollout(rollout, policy, since, now)
            for rollout, policy, since in zip(rollouts, guardrails, began, strict=True)
            if since <= now
        ]

        found = read_many_stage_aggregates(windows)

        for window in windows:
            assert found[window.key] == full_resum(window), f"flag {window.flag_id} at minute {index}"


def test_read__a_new_stage_start__starts_again_from_its_first_minute() -> None:
    rollout = make_running_rollout(policy=POLICY)
    traffic = Traffic(rollout, seed=2)
    first = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    for _, minute in minutes_of(first, 20):
        for arm in ARMS:
            traffic.calls(arm=arm, minute=minute)
    guardrails = list(rollout.guardrails.all())
    now = first + timedelta(minutes=20)
    tick_read(Window.of_rollout(rollout, guardrails, first, now))
    promoted = Window.of_rollout(rollout, guardrails, first + timedelta(minutes=12, seconds=10), now)

    found = tick_read(promoted)

    assert found == full_resum(promoted)
    assert found.canary.units < full_resum(Window.of_rollout(rollout, guardrails, first, now)).canary.units
    checkpoint = AggregateCheckpoint.objects.get(flag=rollout.flag)
    assert checkpoint.since == first + timedelta(minutes=12)


def test_read__guardrails_edited__sums_made_for_the_new_policy() -> None:
    rollout = make_running_rollout(policy=POLICY)
    traffic = Traffic(rollout, seed=3)
    first = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    for _, minute in minutes_of(first, 20):
        for arm in ARMS:
            traffic.calls(arm=arm, minute=minute)
            traffic.scores(arm=arm, minute=minute)
    guardrails = list(rollout.guardrails.all())
    now = first + timedelta(minutes=20)
    without_scores = [g for g in guardrails if g.metric != "live_pass_rate"]
    tick_read(Window.of_rollout(rollout, without_scores, first, now))
    window = Window.of_rollout(rollout, guardrails, first, now)

    found = tick_read(window)

    assert found == full_resum(window)
    assert found.canary.metric("live_pass_rate:helpful").n > 0


def test_read__until_before_the_checkpoint__read_from_the_first_minute() -> None:
    rollout = make_running_rollout(policy=POLICY)
    traffic = Traffic(rollout, seed=4)
    first = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    for _, minute in minutes_of(first, 20):
        for arm in ARMS:
            traffic.calls(arm=arm, minute=minute)
    guardrails = list(rollout.guardrails.all())
    tick_read(Window.of_rollout(rollout, guardrails, first, first + timedelta(minutes=20)))
    earlier = Window.of_rollout(rollout, guardrails, first, first + timedelta(minutes=8))

    assert tick_read(earlier) == full_resum(earlier)


def test_read__a_row_reaching_a_settled_minute__left_out_of_that_window() -> None:
    rollout = make_running_rollout(policy=POLICY)
    traffic = Traffic(rollout, seed=5)
    first = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    for _, minute in minutes_of(first, 20):
        traffic.calls(arm="candidate", minute=minute)
    guardrails = list(rollout.guardrails.all())
    window = Window.of_rollout(rollout, guardrails, first, first + timedelta(minutes=20))
    before = tick_read(window)
    traffic.calls(arm="candidate", minute=first)  # later than FLAGSTAFF_ROLLOUT_SETTLED_MINUTES

    assert tick_read(window) == before
    assert full_resum(window).canary.units > before.canary.units
