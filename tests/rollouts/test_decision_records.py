"""A Decision's JSON of the analysis' values (pure: no database)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

from rollouts import decision_records
from rollouts.analysis import ArmAggregates, MetricAggregate, MetricResult, MetricStatus
from rollouts.stats import Comparison


def test_metric_result_json__unbounded_comparison__as_asdict_with_nulls_and_lists() -> None:
    comparison = Comparison(
        canary=0.8,
        control=0.85,
        difference=0.05,
        margin=0.02,
        lower=-math.inf,
        upper=math.inf,
        p_value=0.5,
        alpha_regression=0.05,
        alpha_promotion=0.05,
    )
    result = MetricResult(
        name="live_pass_rate:helpful",
        label="live pass rate",
        status=MetricStatus.UNDECIDED,
        acting=True,
        critical=False,
        n_canary=40,
        n_control=41,
        scorer_errors=(1, 0),
        margin=0.02,
        comparison=comparison,
    )

    found = decision_records.metric_result_json(result)

    assert found == decision_records.json_ready(asdict(result))
    assert found["comparison"]["lower"] is None
    assert found["scorer_errors"] == [1, 0]
    json.dumps(found, allow_nan=False)


def test_arm_json__histogram_and_counts__bucket_keys_as_text() -> None:
    arm = ArmAggregates(
        units=12,
        metrics={
            "latency_p95": MetricAggregate(n=3, histogram={81: 2, 90: 1}),
            "cost_per_call": MetricAggregate(n=12, total=0.5, total_sq=math.nan),
        },
        cache_hit_ratio=None,
    )

    found = decision_records.arm_json(arm)

    assert found["metrics"]["latency_p95"]["histogram"] == {"81": 2, "90": 1}
    assert found["metrics"]["cost_per_call"]["total_sq"] is None
    assert (
        decision_records.arm_from_json(json.loads(json.dumps(found))).metrics["latency_p95"]
        == (arm.metrics["latency_p95"])
    )
