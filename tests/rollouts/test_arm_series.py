"""The per-arm series of a rollout's page: summed per slot in SQL from the analysis' rollups."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from statsmodels.stats.proportion import proportion_confint

from rollouts.arm_series import ArmSeries, Chart, rollout_arm_series
from rollouts.models import Rollout
from telemetry import histograms
from telemetry.budgets import effective_budgets
from telemetry.models.calls import Rollup
from tests.rollouts.factories import add_calls, add_scores, make_rollout, make_running_rollout

pytestmark = pytest.mark.django_db


def _started(rollout: Rollout) -> datetime:
    started = rollout.stages.get(index=0).started_at
    assert started is not None
    return started.replace(second=0, microsecond=0)


def _chart(series: ArmSeries, key: str) -> Chart:
    return next(chart for chart in series.charts if chart.key == key)


def _dataset(chart: Chart, label: str) -> dict[str, Any]:
    return next(dataset for dataset in chart.data["datasets"] if dataset["label"] == label)


def test_rollout_arm_series__not_started__none() -> None:
    assert rollout_arm_series(make_rollout()) is None


def test_rollout_arm_series__two_minutes_of_traffic__error_rate_and_p95_per_minute_per_arm() -> None:
    rollout = make_running_rollout()
    start = _started(rollout)
    add_calls(rollout, arm="candidate", calls=100, errors=5, at=start, latency_ms=900)
    add_calls(rollout, arm="candidate", calls=100, errors=1, at=start + timedelta(minutes=2), latency_ms=3000)
    add_calls(rollout, arm="control", calls=100, errors=2, at=start, latency_ms=800)

    series = rollout_arm_series(rollout, now=start + timedelta(minutes=2, seconds=30))

    assert series is not None
    assert (series.grain, len(series.labels)) == ("minute", 3)
    errors = _chart(series, "error_rate")
    assert _dataset(errors, "v2 · candidate")["data"] == [5.0, None, 1.0]
    assert _dataset(errors, "v1 · control")["data"] == [2.0, None, None]
    latency = _chart(series, "latency_p95")
    expected = [round(histograms.bucket_value(histograms.bucket_of(ms))) for ms in (900, 3000)]
    assert _dataset(latency, "v2 · candidate")["data"] == [expected[0], None, expected[1]]


def test_rollout_arm_series__latency_charts__carry_the_surfaces_budget_line_where_it_has_one() -> None:
    rollout = make_running_rollout()  # a chat surface: a TTFT budget, no total latency budget
    add_calls(rollout, arm="candidate", calls=10, at=_started(rollout), latency_ms=500)
    budgets = effective_budgets(rollout.flag.surface, rollout.flag.budgets or {})

    series = rollout_arm_series(rollout)

    assert series is not None
    ttft, total = _chart(series, "ttft_p95"), _chart(series, "latency_p95")
    budget = ttft.data["datasets"][-1]
    assert (budget["type"], set(budget["data"])) == ("line", {budgets.ttft_p95_ms})
    assert ttft.note == f"budget {budgets.ttft_p95_ms} ms"
    assert [dataset.get("type") for dataset in total.data["datasets"]] == [None, None]
    assert total.note == "no budget for a chat surface"


def test_rollout_arm_series__pass_rate__cumulative_with_the_wilson_interval_of_statsmodels() -> None:
    rollout = make_running_rollout()
    start = _started(rollout)
    add_scores(rollout, arm="candidate", n=50, passed=40, at=start)
    add_scores(rollout, arm="candidate", n=55, passed=41, errors=5, at=start + timedelta(minutes=1))

    series = rollout_arm_series(rollout, now=start + timedelta(minutes=1, seconds=10))

    assert series is not None
    chart = _chart(series, "pass_rate_helpful")
    rate = _dataset(chart, "v2 · candidate")["data"]
    low = _dataset(chart, "v2 · candidate, 95 % interval low")["data"]
    high = _dataset(chart, "v2 · candidate, 95 % interval high")["data"]
    # Scorer errors are not judged: 81 passed of 100 judged after two minutes.
    assert rate == [80.0, 81.0]
    expected_low, expected_high = proportion_confint(81, 100, alpha=0.05, method="wilson")
    assert (low[1], high[1]) == (round(expected_low * 100, 2), round(expected_high * 100, 2))
    assert _dataset(chart, "v1 · control")["data"] == [None, None]


def test_rollout_arm_series__other_versions_arms_and_flags__left_out() -> None:
    rollout = make_running_rollout()
    start = _started(rollout)
    add_calls(rollout, arm="candidate", calls=10, at=start)
    # Everyone else on the baseline, and the candidate served outside the canary's arm.
    Rollup.objects.create(
        bucket=start,
        environment=rollout.environment,
        flag=rollout.flag,
        version=1,
        arm="baseline",
        model="claude-sonnet-5-5",
        calls=1000,
        errors=1000,
    )
    Rollup.objects.create(
        bucket=start,
        environment=rollout.environment,
        flag=rollout.flag,
        version=2,
        arm="control",
        model="claude-sonnet-5-5",
        calls=1000,
        errors=1000,
    )

    series = rollout_arm_series(rollout, now=start + timedelta(seconds=30))

    assert series is not None
    errors = _chart(series, "error_rate")
    assert [dataset["data"] for dataset in errors.data["datasets"]] == [[0.0], [None]]


def test_rollout_arm_series__a_day_long_rollout__hourly_in_a_fixed_number_of_queries(
    django_assert_num_queries: object,
) -> None:
    rollout = make_running_rollout()
    start = _started(rollout)
    for hour in range(0, 24, 3):
        for arm in ("candidate", "control"):
            add_calls(rollout, arm=arm, calls=100, at=start + timedelta(hours=hour), latency_ms=700)
            add_scores(rollout, arm=arm, n=50, passed=45, at=start + timedelta(hours=hour))
    rollout = Rollout.objects.select_related("flag", "environment", "baseline", "candidate").get(
        pk=rollout.pk
    )

    # Half past the 24th hour that began since the start's hour, whatever minute the stage
    # started at (a start in an hour's first minute made `start + 23 h` end on an hour, 23 slots).
    now = start.replace(minute=0) + timedelta(hours=23, minutes=30)

    # The first stage's start, the guardrails, and one query per rollup table.
    with django_assert_num_queries(5):  # type: ignore[operator]
        series = rollout_arm_series(rollout, now=now)

    assert series is not None
    assert (series.grain, len(series.labels)) == ("hour", 24)
    calls = _dataset(_chart(series, "error_rate"), "v2 · candidate")["data"]
    assert [value is not None for value in calls] == [hour % 3 == 0 for hour in range(24)]
    assert series.has_traffic
