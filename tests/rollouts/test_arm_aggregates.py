"""Per-arm aggregates of a stage, summed from the rollups in SQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rollouts.arm_aggregates import read_stage_aggregates
from telemetry import histograms
from tests.rollouts.factories import add_calls, add_scores, make_running_rollout

pytestmark = pytest.mark.django_db

POLICY = [
    {"metric": "api_error_rate", "margin": 0.01},
    {"metric": "latency_p95", "margin": 100},
    {"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.02},
]


def test_read_stage_aggregates__two_minutes_of_each_arm__summed_per_arm_and_metric() -> None:
    rollout = make_running_rollout(policy=POLICY)
    now = timezone.now()
    for minute in (0, 1):
        add_calls(
            rollout, arm="candidate", calls=100, errors=3, at=now + timedelta(minutes=minute), latency_ms=900
        )
        add_calls(
            rollout, arm="control", calls=110, errors=1, at=now + timedelta(minutes=minute), latency_ms=400
        )
    add_scores(rollout, arm="candidate", n=50, passed=40, errors=5)
    add_scores(rollout, arm="control", n=60, passed=51)

    found = read_stage_aggregates(
        rollout=rollout, guardrails=rollout.guardrails.all(), since=now, until=now + timedelta(minutes=5)
    )

    errors = found.canary.metric("api_error_rate")
    assert (found.canary.units, found.control.units) == (200, 220)
    assert (errors.n, errors.total) == (200, 6)
    assert found.canary.metric("latency_p95").histogram == {histograms.bucket_of(900): 200}
    live = found.canary.metric("live_pass_rate:helpful")
    assert (live.n, live.total, live.errors) == (45, 40, 5)  # errors are neither passes nor failures
    assert found.control.metric("live_pass_rate:helpful").n == 60


def test_read_stage_aggregates__baseline_band_other_versions_and_other_minutes__left_out() -> None:
    rollout = make_running_rollout(policy=POLICY)
    now = timezone.now()
    add_calls(rollout, arm="candidate", calls=10, at=now)
    add_calls(rollout, arm="baseline", calls=5_000, at=now)  # outside the control band
    add_calls(rollout, arm="control", calls=10, at=now - timedelta(hours=2))  # before the stage

    found = read_stage_aggregates(
        rollout=rollout, guardrails=rollout.guardrails.all(), since=now, until=now + timedelta(minutes=5)
    )

    assert (found.canary.units, found.control.units) == (10, 0)


def test_read_stage_aggregates__stage_started_mid_minute__that_minutes_rollup_counted() -> None:
    rollout = make_running_rollout(policy=POLICY)
    start = timezone.now().replace(second=30)
    add_calls(rollout, arm="candidate", calls=7, at=start)

    found = read_stage_aggregates(
        rollout=rollout, guardrails=rollout.guardrails.all(), since=start, until=start + timedelta(minutes=1)
    )

    assert found.canary.units == 7
