"""A rollout's plan checked without a database: stages, guardrails and the default policy."""

from __future__ import annotations

from rollouts import plans


def test_clean_stages__one_three_ten_fifty_then_full__valid() -> None:
    specs, problems = plans.clean_stages([{"weight": w} for w in (100, 300, 1000, 5000, 10000)])

    assert problems == []
    assert [spec.completes for spec in specs] == [False, False, False, False, True]


def test_clean_stages__min_duration_above_max__problem_at_the_max() -> None:
    _, problems = plans.clean_stages(
        [{"weight": 100, "min_duration_seconds": 600, "max_duration_seconds": 60}]
    )

    assert [problem["path"] for problem in problems] == ["stages[0].max_duration_seconds"]


def test_clean_stages__unknown_gate_and_fallback__both_named() -> None:
    _, problems = plans.clean_stages([{"weight": 100, "gate": "maybe", "on_inconclusive": "shrug"}])

    assert {problem["path"] for problem in problems} == {"stages[0].gate", "stages[0].on_inconclusive"}


def test_clean_guardrails__same_name_twice__problem_at_the_second() -> None:
    _, problems = plans.clean_guardrails(
        [{"metric": "api_error_rate", "margin": 0.01}, {"metric": "api_error_rate", "margin": 0.02}]
    )

    assert [problem["path"] for problem in problems] == ["policy[1].name"]


def test_default_guardrails__surface_without_a_total_budget__relative_latency_margin() -> None:
    policy = plans.default_guardrails(
        latency_budgets_ms={"ttft_p95_ms": 2000, "total_p95_ms": None}, scorers=["tone"]
    )

    by_name = {spec.name: spec for spec in policy}
    assert by_name["live_pass_rate:tone"].critical
    assert (by_name["ttft_p95"].margin, by_name["ttft_p95"].relative_margin) == (200.0, False)
    assert (by_name["latency_p95"].margin, by_name["latency_p95"].relative_margin) == (0.1, True)


def test_default_guardrails__cost_per_call__continuous_within_5_percent_of_control_excluded_in_warmup() -> (
    None
):
    policy = plans.default_guardrails(latency_budgets_ms={}, scorers=[])

    cost = next(spec for spec in policy if spec.name == "cost_per_call")
    assert (cost.kind, cost.direction, cost.source) == ("continuous", "increase_is_bad", "telemetry")
    assert (cost.margin, cost.relative_margin, cost.critical, cost.may_act) == (0.05, True, False, True)
    assert (cost.cache_sensitive, cost.unit) == (True, "$")


def test_clean_guardrails__cost_per_call__accepted_as_continuous() -> None:
    specs, problems = plans.clean_guardrails([{"metric": "cost_per_call", "margin": 0.0005}])

    assert problems == []
    assert (specs[0].kind, specs[0].margin, specs[0].relative_margin) == ("continuous", 0.0005, False)
