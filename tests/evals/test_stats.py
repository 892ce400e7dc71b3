"""evals/stats.py against published values and against statsmodels/scipy computed independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import binomtest, norm, ttest_rel
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from evals import stats


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    # Newcombe R. G. (1998) Statistics in Medicine 17:857-872, Table II, method 3 (score).
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval__newcombe_examples__match_published(successes, n, low, high):
    interval = stats.wilson_interval(successes, n)

    assert interval == pytest.approx((low, high), abs=5e-5)


@pytest.mark.parametrize(("successes", "n"), [(0, 1), (1, 1), (37, 40), (500, 1000), (9_999, 10_000)])
def test_wilson_interval__counts__equal_statsmodels(successes, n):
    expected = proportion_confint(successes, n, alpha=0.05, method="wilson")

    assert stats.wilson_interval(successes, n) == pytest.approx(expected, abs=1e-12)


def test_wilson_interval__no_trials__is_the_whole_range():
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_lower_bound__more_cases_same_rate__rises():
    assert stats.wilson_lower_bound(90, 100) < stats.wilson_lower_bound(900, 1000) < 0.9


def test_wilson_interval__more_successes_than_trials__refused():
    with pytest.raises(ValueError, match="out of range"):
        stats.wilson_interval(5, 4)


@pytest.mark.parametrize(("b", "c"), [(3, 12), (12, 3), (7, 7), (0, 9), (25, 40)])
def test_mcnemar_exact_p__discordant_counts__equals_two_sided_binomial_test(b, c):
    expected = binomtest(b, b + c, 0.5).pvalue

    assert stats.mcnemar_exact_p(candidate_only=b, baseline_only=c) == pytest.approx(expected)


def test_mcnemar_exact_p__no_discordant_cases__is_one():
    assert stats.mcnemar_exact_p(candidate_only=0, baseline_only=0) == 1.0


@pytest.mark.parametrize(("b", "c", "n"), [(3, 12, 100), (40, 20, 160), (9, 1, 30)])
def test_tango_z__zero_margin__reduces_to_mcnemar_score_statistic(b, c, n):
    chi2 = mcnemar([[0, b], [c, 0]], exact=False, correction=False).statistic

    assert stats._tango_z(b, c, n, 0.0) == pytest.approx(math.copysign(math.sqrt(chi2), b - c))


@pytest.mark.parametrize(
    ("b", "c", "n", "delta0"), [(3, 12, 100, -0.05), (40, 20, 160, 0.2), (0, 4, 50, -0.02)]
)
def test_tango_z__shifted_null__uses_the_constrained_maximum_likelihood(b, c, n, delta0):
    def negative_log_likelihood(q):
        return -(b * math.log(q + delta0) + c * math.log(q) + (n - b - c) * math.log(1 - 2 * q - delta0))

    low, high = max(0.0, -delta0) + 1e-12, (1 - delta0) / 2 - 1e-12
    q = minimize_scalar(
        negative_log_likelihood, bounds=(low, high), method="bounded", options={"xatol": 1e-12}
    ).x
    expected = (b - c - n * delta0) / math.sqrt(n * (2 * q + delta0 * (1 - delta0)))

    assert stats._tango_z(b, c, n, delta0) == pytest.approx(expected, rel=1e-5)


def test_paired_noninferiority__equal_discordance_many_cases__non_inferior():
    result = stats.paired_noninferiority(candidate_only=20, baseline_only=20, n=1000, margin=0.02)

    assert result.non_inferior
    assert result.difference == 0.0
    assert result.lower > -0.02


def test_paired_noninferiority__candidate_four_points_worse__not_non_inferior():
    result = stats.paired_noninferiority(candidate_only=0, baseline_only=40, n=1000, margin=0.02)

    assert not result.non_inferior
    assert result.difference == pytest.approx(-0.04)
    assert result.upper < 0


@pytest.mark.parametrize(("b", "c", "n"), [(5, 9, 200), (0, 0, 50), (12, 3, 40), (1, 30, 31), (10, 0, 10)])
def test_paired_noninferiority__interval__inverts_the_test(b, c, n):
    result = stats.paired_noninferiority(candidate_only=b, baseline_only=c, n=n, margin=0.05)
    z_crit = norm.ppf(0.975)

    assert result.lower <= result.difference <= result.upper
    if result.lower > -1:
        assert stats._tango_z(b, c, n, result.lower) == pytest.approx(z_crit, abs=1e-6)
    assert result.non_inferior == (result.lower > -0.05)


def test_paired_noninferiority__no_cases__not_non_inferior():
    assert not stats.paired_noninferiority(candidate_only=0, baseline_only=0, n=0, margin=0.02).non_inferior


def test_paired_bootstrap__large_normal_sample__agrees_with_paired_t_interval():
    rng = np.random.default_rng(7)
    baseline = rng.uniform(0.2, 0.9, 4000)
    candidate = np.clip(baseline + rng.normal(0.01, 0.1, 4000), 0, 1)
    t_interval = ttest_rel(candidate, baseline).confidence_interval(0.95)

    result = stats.paired_bootstrap(candidate.tolist(), baseline.tolist(), margin=0.02, seed=1)

    assert result.lower == pytest.approx(t_interval.low, abs=0.002)
    assert result.upper == pytest.approx(t_interval.high, abs=0.002)
    assert result.non_inferior


def test_paired_bootstrap__same_seed__same_interval():
    candidate, baseline = [0.2, 0.9, 0.4, 1.0, 0.0, 0.7], [0.5, 0.8, 0.4, 0.6, 0.3, 0.9]

    first = stats.paired_bootstrap(candidate, baseline, margin=0.02, seed=3)

    assert stats.paired_bootstrap(candidate, baseline, margin=0.02, seed=3) == first


def test_paired_bootstrap__candidate_clearly_worse__not_non_inferior():
    baseline = [0.9] * 50 + [0.8] * 50
    candidate = [0.7] * 50 + [0.75] * 50

    result = stats.paired_bootstrap(candidate, baseline, margin=0.02)

    assert result.upper < -0.02
    assert not result.non_inferior


def test_paired_bootstrap__identical_differences__interval_is_the_point():
    result = stats.paired_bootstrap([0.5, 0.6, 0.7], [0.5, 0.6, 0.7], margin=0.02)

    assert (result.lower, result.difference, result.upper) == (0.0, 0.0, 0.0)
    assert result.non_inferior


def test_paired_bootstrap__different_case_counts__refused():
    with pytest.raises(ValueError, match="same cases"):
        stats.paired_bootstrap([0.5], [0.5, 0.6], margin=0.02)
