"""Per-arm aggregates of a stage, summed from the rollups in SQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from rollouts.arm_aggregates import Window, read_many_stage_aggregates, read_stage_aggregates
from rollouts.models import Rollout
from rollouts.stats import Moments
from telemetry import histograms
from telemetry.models import CallRecord, Rollup
from telemetry.services.ingest import ingest_calls
from tests.rollouts.factories import add_calls, add_scores, make_running_rollout
from tests.telemetry.call_factories import flag_state_for, make_record, seed_prices

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


COST_POLICY = [{"metric": "cost_per_call", "margin": 0.05, "relative_margin": True}]


def _send_priced_calls(rollout: Rollout, *, arm: str, count: int, seed: int, at: datetime) -> None:
    """Calls of one arm through the real ingest, with token counts (so costs) drawn at random,
    one of them of a model without a price."""
    version = rollout.candidate if arm == "candidate" else rollout.baseline
    token = flag_state_for(rollout.environment, version, arm=arm)
    rng = np.random.default_rng(seed)
    records = [
        make_record(
            timestamp=(at + timedelta(seconds=int(second))).isoformat(),
            flag_state=token,
            usage={"input_tokens": int(tokens_in), "output_tokens": int(tokens_out)},
        )
        for tokens_in, tokens_out, second in zip(
            rng.lognormal(7, 1, count), rng.lognormal(5, 0.8, count), rng.integers(0, 180, count), strict=True
        )
    ]
    records.append(make_record(timestamp=at.isoformat(), flag_state=token, model="claude-unknown-9"))
    ingest_calls(records=records, received_at=at + timedelta(minutes=3))


def test_read_stage_aggregates__cost_per_call__mean_and_variance_of_the_ingested_costs() -> None:
    seed_prices()
    rollout = make_running_rollout(policy=COST_POLICY)
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    _send_priced_calls(rollout, arm="candidate", count=400, seed=1, at=start)
    _send_priced_calls(rollout, arm="control", count=500, seed=2, at=start)

    found = read_stage_aggregates(
        rollout=rollout, guardrails=rollout.guardrails.all(), since=start, until=start + timedelta(minutes=5)
    )

    for arm_name, aggregates in (("candidate", found.canary), ("control", found.control)):
        stored = CallRecord.objects.filter(arm=arm_name).exclude(cost_micro_usd=None)
        costs = np.array(stored.values_list("cost_micro_usd", flat=True), dtype=float) / 1e6
        cost = aggregates.metric("cost_per_call")
        moments = Moments(cost.n, cost.total, cost.total_sq)
        assert cost.n == len(costs) == aggregates.units - 1  # the unknown model's call is left out
        assert moments.mean == pytest.approx(costs.mean(), rel=1e-12)
        assert moments.variance == pytest.approx(costs.var(ddof=1), rel=1e-9)


def test_read_stage_aggregates__a_row_without_its_sum_of_squares__cost_left_out() -> None:
    rollout = make_running_rollout(policy=COST_POLICY)
    now = timezone.now()
    add_calls(rollout, arm="candidate", calls=10, at=now)
    row = add_calls(rollout, arm="control", calls=10, at=now)
    Rollup.objects.filter(pk=row.pk).update(cost_micro_usd=40_000, cost_sq_micro_usd2=None)

    found = read_stage_aggregates(
        rollout=rollout, guardrails=rollout.guardrails.all(), since=now, until=now + timedelta(minutes=5)
    )

    assert "cost_per_call" in found.canary.metrics
    assert "cost_per_call" not in found.control.metrics  # unknown, never guessed: no evidence


def test_read_many_stage_aggregates__two_rollouts_at_once__each_as_read_alone() -> None:
    first, second = make_running_rollout(policy=POLICY), make_running_rollout(policy=POLICY)
    now = timezone.now()
    for rollout, calls in ((first, 100), (second, 300)):
        add_calls(rollout, arm="candidate", calls=calls, errors=2, at=now, latency_ms=700)
        add_calls(rollout, arm="control", calls=calls + 10, at=now, latency_ms=500)
        add_scores(rollout, arm="candidate", n=calls // 2, passed=calls // 3)
    later = now + timedelta(minutes=5)
    windows = [Window.of_rollout(r, r.guardrails.all(), now, later) for r in (first, second)]

    together = read_many_stage_aggregates(windows)

    for rollout, window in zip((first, second), windows, strict=True):
        alone = read_stage_aggregates(
            rollout=rollout, guardrails=rollout.guardrails.all(), since=now, until=later
        )
        assert together[window.key] == alone
    assert together[windows[1].key].canary.units == 300


def test_read_many_stage_aggregates__same_flag_and_environment_twice__refused() -> None:
    rollout = make_running_rollout(policy=POLICY)
    now = timezone.now()
    window = Window.of_rollout(rollout, rollout.guardrails.all(), now, now + timedelta(minutes=1))

    with pytest.raises(ValueError, match="one window per flag and environment"):
        read_many_stage_aggregates([window, window])
