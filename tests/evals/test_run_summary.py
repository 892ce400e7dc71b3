import pytest

from evals.run_summary import CaseResult, ScorerResult, percentile, summarize, wilson_interval


def test_wilson_interval__8_of_10__published_value() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 has the Wilson 95 %
    # interval 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263) or (0.0, 0.0)

    assert low == pytest.approx(0.2553, abs=5e-5)
    assert high == pytest.approx(0.3662, abs=5e-5)


def test_wilson_interval__no_cases__none() -> None:
    assert wilson_interval(0, 0) is None


def test_percentile__ten_values__linear_interpolation() -> None:
    assert percentile(list(range(1, 11)), 95) == pytest.approx(9.55)
    assert percentile([], 50) is None


def test_summarize__mixed_cases__pass_rate_over_judged_and_errors_apart() -> None:
    cases = [
        CaseResult(
            passed=True,
            answered=True,
            scores={"contains": ScorerResult(1.0, True)},
            cost_micro_usd=100,
            latency_ms=200,
            usage={"input_tokens": 10, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 0},
        ),
        CaseResult(
            passed=False,
            answered=True,
            scores={"contains": ScorerResult(0.0, False)},
            cost_micro_usd=300,
            latency_ms=400,
            usage={"input_tokens": 40},
        ),
        CaseResult(
            passed=None,
            answered=True,
            scores={"contains": ScorerResult(None, None, error="bad regex")},
            cost_micro_usd=None,
            latency_ms=600,
        ),
        CaseResult(passed=None, answered=False),
    ]

    summary = summarize(cases)

    assert summary["passed"] == 1
    assert summary["judged"] == 2
    assert summary["errors"] == 2
    assert summary["pass_rate"] == 0.5
    assert summary["scorers"]["contains"] == {"mean_score": 0.5, "passed": 1, "n": 2, "errors": 1}
    assert summary["cost_micro_usd"] == 400
    assert summary["cost_per_case_micro_usd"] == 200
    assert summary["cost_unknown_cases"] == 1
    assert summary["latency_p50_ms"] == 400
    assert summary["cache_hit_ratio"] == pytest.approx(30 / 80)
