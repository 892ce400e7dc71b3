"""Rollout statistics against scipy/statsmodels, the papers' closed forms and simulated coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from rollouts import stats
from telemetry import histograms


def test_srm_p_value__52_48_split__matches_scipy_chisquare() -> None:
    observed = [5200, 4800]
    expected = scipy_stats.chisquare(observed, [5000, 5000]).pvalue
    p_value = stats.srm_p_value(observed, [1, 1])
    assert p_value == pytest.approx(expected, rel=1e-9)
    assert p_value is not None
    assert p_value < 0.001


def test_srm_p_value__three_unequal_arms__matches_scipy_chisquare() -> None:
    observed = [1010, 2050, 6940]
    weights = [0.1, 0.2, 0.7]
    expected = scipy_stats.chisquare(observed, [1000, 2000, 7000]).pvalue
    assert stats.srm_p_value(observed, weights) == pytest.approx(expected, rel=1e-9)


def test_srm_p_value__no_units__is_none() -> None:
    assert stats.srm_p_value([0, 0], [1, 1]) is None


@pytest.mark.parametrize(
    ("observed", "weights"),
    [([5200, 4800], [1, 1]), ([130, 70], [1, 1]), ([1010, 2050, 6940], [0.1, 0.2, 0.7]), ([3, 0], [1, 1])],
)
def test_srm_sequential_p_value__bayes_factor__matches_scipy_dirichlet_multinomial_over_multinomial(
    observed: list[int], weights: list[float]
) -> None:
    # Lindon & Malek (2022): BF = Dirichlet-multinomial(counts; k·p0) / multinomial(counts; p0).
    p0 = np.asarray(weights) / sum(weights)
    n = sum(observed)
    log_bf = scipy_stats.dirichlet_multinomial.logpmf(
        observed, stats.SRM_CONCENTRATION * p0, n
    ) - scipy_stats.multinomial.logpmf(observed, n, p0)
    expected = min(1.0, math.exp(-log_bf))
    assert stats.srm_sequential_p_value(observed, weights) == pytest.approx(expected, rel=1e-9)


def test_srm_sequential_p_value__52_48_split__alarms_later_than_the_fixed_sample_test() -> None:
    # The price of looking at every tick: at 10,000 units a 52/48 split is below 0.001 for the
    # chi-square, but not yet for the sequential test; at 30,000 it is for both.
    assert stats.srm_p_value([5200, 4800], [1, 1]) < 0.001  # type: ignore[operator]
    assert stats.srm_sequential_p_value([5200, 4800], [1, 1]) > 0.001  # type: ignore[operator]
    assert stats.srm_sequential_p_value([15600, 14400], [1, 1]) < 0.001  # type: ignore[operator]


def test_srm_sequential_p_value__no_units__is_none_and_a_unit_where_none_belongs__is_zero() -> None:
    assert stats.srm_sequential_p_value([0, 0], [1, 1]) is None
    assert stats.srm_sequential_p_value([10, 1], [1, 0]) == 0.0
    assert stats.srm_sequential_p_value([10, 0], [1, 0]) == 1.0


def test_srm_sequential_p_value__read_every_tick_under_h0__false_alarms_stay_within_alpha() -> None:
    # 2,000 A/A stages of 60 ticks at 200 units per arm per tick, read at α = 0.05 after every
    # tick: the sequential test's false alarms stay below α (Ville); the chi-square read the
    # same way alarms several times as often (the peeking problem the sequential test removes).
    rng = np.random.default_rng(7)
    counts = np.cumsum(rng.poisson(200, size=(2_000, 60, 2)), axis=1)
    sequential = chi_square = 0
    for stage in counts:
        sequential += any(stats.srm_sequential_p_value(tick, [1, 1]) < 0.05 for tick in stage)  # type: ignore[operator]
        chi_square += any(stats.srm_p_value(tick, [1, 1]) < 0.05 for tick in stage)  # type: ignore[operator]
    assert sequential / 2_000 <= 0.05
    assert chi_square / 2_000 > 3 * 0.05


def test_log_one_sided_mixture__closed_form__equals_numerical_integral_of_the_mixture() -> None:
    # ∫_0^∞ exp(λS − λ²t/2) · 2φ(λ/ρ)/ρ dλ computed by quadrature, against the closed form.
    t, rho, s = 400.0, 0.05, 30.0
    integral, _ = integrate.quad(
        lambda lam: math.exp(lam * s - lam * lam * t / 2) * 2 * scipy_stats.norm.pdf(lam / rho) / rho,
        0,
        np.inf,
    )
    closed = math.exp(stats.log_one_sided_mixture(s / math.sqrt(t), t * rho * rho))
    assert closed == pytest.approx(integral, rel=1e-7)


def test_two_sided_p_value__at_waudby_smith_halfwidth__equals_alpha() -> None:
    # Waudby-Smith et al. (2024) Theorem 2.2: half-width / se = sqrt(2(η²+1)/η² · ln(sqrt(η²+1)/α)).
    alpha, eta2 = 0.05, stats.tuning_eta_squared(n=2_000, n_star=5_000)
    z = math.sqrt(2 * (eta2 + 1) / eta2 * math.log(math.sqrt(eta2 + 1) / alpha))
    assert stats.two_sided_p_value(z, eta2) == pytest.approx(alpha, rel=1e-12)


def test_one_sided_boundary__any_alpha__lies_between_two_sided_boundaries_at_alpha_and_twice_alpha() -> None:
    # The one-sided mixture M1 = 2Φ(x)·M2 lies in [M2, 2·M2], so its boundary at α lies between the
    # two-sided closed-form boundaries at 2α and at α.
    for alpha in (0.05, 0.01, 0.005):
        for n in (50, 1_000, 100_000):
            eta2 = stats.tuning_eta_squared(n=n, n_star=10_000)

            def closed(level: float, eta2: float = eta2) -> float:
                return math.sqrt(2 * (eta2 + 1) / eta2 * math.log(math.sqrt(eta2 + 1) / level))

            boundary = stats.one_sided_boundary(alpha, eta2)
            assert closed(2 * alpha) < boundary < closed(alpha)
            assert stats.one_sided_p_value(boundary, eta2) == pytest.approx(alpha, rel=1e-8)


def test_tuning_eta_squared__at_n_star__is_the_papers_constant() -> None:
    # ρ² n* = −2 ln α + ln(−2 ln α + 1): at α = 0.05 that is 5.9915 + ln 6.9915 = 7.9361.
    assert stats.tuning_eta_squared(n=5_000, n_star=5_000, alpha=0.05) == pytest.approx(7.93615, abs=1e-4)


def test_compare_means__welch_difference__standard_error_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    canary, control = rng.lognormal(0, 0.8, 500), rng.lognormal(0, 0.8, 400)
    comparison = stats.compare_means(
        stats.Moments(500, float(canary.sum()), float((canary**2).sum())),
        stats.Moments(400, float(control.sum()), float((control**2).sum())),
        increase_is_bad=True,
        margin=0.0,
        binary=False,
        alpha_regression=0.05,
        alpha_promotion=0.05,
        n_star=1_000,
    )
    expected = math.sqrt(canary.var(ddof=1) / 500 + control.var(ddof=1) / 400)
    assert comparison.standard_error == pytest.approx(expected, rel=1e-9)
    assert comparison.difference == pytest.approx(canary.mean() - control.mean(), rel=1e-9)


def test_compare_means__lower_bound_clears_margin__exactly_when_p_value_is_below_alpha() -> None:
    for canary_passes in range(200, 260, 3):
        comparison = stats.compare_means(
            stats.Moments(300, canary_passes, canary_passes),
            stats.Moments(300, 255, 255),
            increase_is_bad=False,
            margin=0.02,
            binary=True,
            alpha_regression=0.01,
            alpha_promotion=0.05,
            n_star=10_000,
        )
        assert comparison.regression == (comparison.p_value <= 0.01)


def test_compare_means__control_without_events__variance_is_not_zero() -> None:
    # Agresti-Caffo: one error in 200 canary calls against none in 200 is not a certain regression.
    comparison = stats.compare_means(
        stats.Moments(200, 1, 1),
        stats.Moments(200, 0, 0),
        increase_is_bad=True,
        margin=0.0,
        binary=True,
        alpha_regression=0.005,
        alpha_promotion=0.05,
        n_star=10_000,
    )
    assert not comparison.regression
    assert comparison.p_value > 0.5


def _crossing_share(rng: np.random.Generator, *, binary: bool, runs: int, looks: int, per_look: int) -> float:
    """Share of A/A runs whose lower bound ever exceeds the true difference (0) over `looks` looks."""
    crossed = 0
    for _ in range(runs):
        if binary:
            a = rng.binomial(1, 0.85, looks * per_look).astype(float)
            b = rng.binomial(1, 0.85, looks * per_look).astype(float)
        else:
            a = rng.lognormal(0, 0.8, looks * per_look)
            b = rng.lognormal(0, 0.8, looks * per_look)
        sums_a, sums_b = np.cumsum(a), np.cumsum(b)
        squares_a, squares_b = np.cumsum(a * a), np.cumsum(b * b)
        for look in range(1, looks + 1):
            i, n = look * per_look - 1, look * per_look
            comparison = stats.compare_means(
                stats.Moments(n, float(sums_a[i]), float(squares_a[i])),
                stats.Moments(n, float(sums_b[i]), float(squares_b[i])),
                increase_is_bad=True,
                margin=0.0,
                binary=binary,
                alpha_regression=0.05,
                alpha_promotion=0.05,
                n_star=2 * looks * per_look,
            )
            if comparison.lower > 0.0:
                crossed += 1
                break
    return crossed / runs


def test_compare_means__aa_proportions_peeked_every_look__time_uniform_error_below_alpha() -> None:
    # A fixed-sample one-sided 5 % test peeked 60 times crosses far more often than 5 %; the
    # confidence sequence must not.
    assert _crossing_share(np.random.default_rng(11), binary=True, runs=300, looks=60, per_look=50) <= 0.05


def test_compare_means__aa_skewed_means_peeked_every_look__time_uniform_error_below_alpha() -> None:
    assert _crossing_share(np.random.default_rng(12), binary=False, runs=300, looks=60, per_look=50) <= 0.05


def _ratio_null_crossing_share(rng: np.random.Generator, *, relative_share: float) -> float:
    """Share of runs, at the boundary of the ratio null (error rates 1 % and 1.5 %, a 50 % relative
    margin), whose test at α = 0.05 ever rejects over 60 looks of 2,000 calls per arm."""
    crossed = 0
    for _ in range(300):
        canary = np.cumsum(rng.binomial(2_000, 0.015, 60))
        control = np.cumsum(rng.binomial(2_000, 0.01, 60))
        for look in range(60):
            n = 2_000 * (look + 1)
            comparison = stats.compare_means(
                stats.Moments(n, float(canary[look]), float(canary[look])),
                stats.Moments(n, float(control[look]), float(control[look])),
                increase_is_bad=True,
                margin=0.5 * control[look] / n,
                binary=True,
                alpha_regression=0.05,
                alpha_promotion=0.05,
                n_star=10_000,
                relative_share=relative_share,
            )
            if comparison.regression:
                crossed += 1
                break
    return crossed / 300


def test_compare_means__relative_margin_boundary_null_peeked__error_below_alpha_with_contrast_variance() -> (
    None
):
    # The margin moves with the control's estimate: with its variance in the contrast the error
    # stays below α; treating the control's estimate as exact (share 0) exceeds it.
    assert _ratio_null_crossing_share(np.random.default_rng(14), relative_share=0.5) <= 0.05
    assert _ratio_null_crossing_share(np.random.default_rng(14), relative_share=0.0) > 0.05


def _paired(worse: int, ties: int, better: int) -> stats.Moments:
    """n, Σd, Σd² of pairs d = candidate − control passed."""
    return stats.Moments(worse + ties + better, float(better - worse), float(better + worse))


def _compare_paired(
    differences: stats.Moments, *, alpha: float = 0.005, margin: float = 0.02
) -> stats.Comparison:
    return stats.compare_paired(
        differences, increase_is_bad=False, margin=margin, alpha_regression=alpha, alpha_promotion=0.05
    )


def test_compare_paired__candidate_never_wins__capital_is_the_average_of_binomial_likelihood_ratios() -> None:
    # With y in {0, 1} a constant bet λ is the likelihood ratio of Bernoulli(m(1 + λ(1 − m))) to
    # Bernoulli(m) (Waudby-Smith & Ramdas 2023, §3: betting generalises the likelihood ratio), so
    # the capital is the average of scipy's binomial likelihood ratios over the bets.
    losses, n, m = 30, 300, 0.02
    ratios = []
    for fraction in stats.PAIRED_BET_FRACTIONS:
        alternative = m * (1.0 + fraction / (1.0 + m) * (1.0 - m))
        ratios.append(
            math.exp(
                scipy_stats.binom.logpmf(losses, n, alternative) - scipy_stats.binom.logpmf(losses, n, m)
            )
        )
    comparison = _compare_paired(_paired(worse=losses, ties=n - losses, better=0), margin=m)
    assert comparison.p_value == pytest.approx(1.0 / float(np.mean(ratios)), rel=1e-9)


def test_compare_paired__wins_and_losses__capital_equals_the_product_over_the_pairs_in_any_order() -> None:
    rng = np.random.default_rng(5)
    y = rng.permutation(np.repeat([1.0, 0.0, -1.0], [52, 330, 18]))  # bad-direction differences
    m = 0.02
    capital = np.mean([np.prod(1.0 + c / (1.0 + m) * (y - m)) for c in stats.PAIRED_BET_FRACTIONS])
    comparison = _compare_paired(_paired(worse=52, ties=330, better=18), margin=m)
    assert comparison.p_value == pytest.approx(1.0 / capital, rel=1e-9)
    assert comparison.difference == pytest.approx(y.mean(), rel=1e-12)


def test_compare_paired__lower_bound_clears_margin__exactly_when_p_value_is_below_alpha() -> None:
    for worse in range(8, 40, 3):
        comparison = _compare_paired(_paired(worse=worse, ties=300 - worse - 4, better=4))
        assert comparison.regression == (comparison.p_value <= 0.005), worse
        assert comparison.lower <= comparison.difference <= comparison.upper


def test_compare_paired__bounds__are_where_the_test_at_that_mean_rejects() -> None:
    comparison = _compare_paired(_paired(worse=40, ties=350, better=10), alpha=0.005)
    above = stats.compare_paired(
        _paired(worse=40, ties=350, better=10),
        increase_is_bad=False,
        margin=comparison.lower + 1e-6,
        alpha_regression=0.005,
        alpha_promotion=0.05,
    )
    below = stats.compare_paired(
        _paired(worse=40, ties=350, better=10),
        increase_is_bad=False,
        margin=comparison.lower - 1e-6,
        alpha_regression=0.005,
        alpha_promotion=0.05,
    )
    assert above.p_value > 0.005 >= below.p_value


def test_compare_paired__not_differences_of_two_passes__refused() -> None:
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        _compare_paired(stats.Moments(100, -5.0, 6.5))


def test_compare_paired__boundary_null_peeked_every_hundred_pairs__time_uniform_error_below_alpha() -> None:
    # The candidate 2 points worse (5 % losses, 3 % wins), exactly the margin: H0 holds at its
    # boundary. Looked at 30 times, the test must reject in at most α of the runs.
    rng = np.random.default_rng(13)
    runs, looks, alpha = 200, 30, 0.05
    crossed = 0
    for _ in range(runs):
        counts = np.zeros(3, np.int64)
        for _ in range(looks):
            counts += rng.multinomial(100, [0.05, 0.92, 0.03])
            if _compare_paired(_paired(*(int(c) for c in counts)), alpha=alpha).regression:
                crossed += 1
                break
    assert crossed / runs <= alpha


def test_quantile_rank_bounds__fixed_n__wider_than_the_exact_binomial_order_statistic_interval() -> None:
    # Conover §3.2: at a fixed n the ranks from binomial quantiles cover ξ_q with 1 − 2α; a
    # time-uniform interval must be at least as wide at every n.
    alpha, q = 0.025, 0.95
    for n in (300, 1_000, 10_000):
        low, high = stats.quantile_rank_bounds(n=n, q=q, alpha=alpha, n_star=10_000)
        exact_low = int(scipy_stats.binom.ppf(alpha, n, q))
        exact_high = int(scipy_stats.binom.ppf(1 - alpha, n, q)) + 1
        assert low <= exact_low
        assert high >= exact_high
        coverage = scipy_stats.binom.cdf(high - 1, n, q) - scipy_stats.binom.cdf(low - 1, n, q)
        assert coverage >= 1 - 2 * alpha


def test_quantile_bounds__lognormal_latencies_peeked__cover_the_true_p95_uniformly() -> None:
    rng = np.random.default_rng(5)
    true_p95 = math.exp(math.log(400) + 0.5 * scipy_stats.norm.ppf(0.95))
    missed = 0
    runs = 200
    for _ in range(runs):
        counts: dict[int, int] = {}
        for _look in range(30):
            for value in rng.lognormal(math.log(400), 0.5, 100):
                bucket = histograms.bucket_of(float(value))
                counts[bucket] = counts.get(bucket, 0) + 1
            bounds = stats.quantile_bounds(counts, q=0.95, alpha=0.025, n_star=3_000)
            if not bounds.lower <= true_p95 <= bounds.upper:
                missed += 1
                break
    assert missed / runs <= 0.05


def test_compare_quantiles__canary_p95_forty_percent_slower__regression_beyond_a_ten_percent_margin() -> None:
    rng = np.random.default_rng(9)

    def histogram(median: float) -> dict[int, int]:
        counts: dict[int, int] = {}
        for value in rng.lognormal(math.log(median), 0.5, 20_000):
            bucket = histograms.bucket_of(float(value))
            counts[bucket] = counts.get(bucket, 0) + 1
        return counts

    control = histogram(400)
    slower = stats.compare_quantiles(
        histogram(560),
        control,
        q=0.95,
        increase_is_bad=True,
        margin=90.0,
        alpha_regression=0.01,
        alpha_promotion=0.05,
        n_star=40_000,
    )
    same = stats.compare_quantiles(
        histogram(400),
        control,
        q=0.95,
        increase_is_bad=True,
        margin=90.0,
        alpha_regression=0.01,
        alpha_promotion=0.05,
        n_star=40_000,
    )
    assert slower.regression
    assert slower.p_value <= 0.01
    assert not same.regression
    assert same.p_value == 1.0


def test_holm__random_p_values__matches_statsmodels_multipletests() -> None:
    rng = np.random.default_rng(1)
    # Few draws: statsmodels' Holm runs gc.collect() on every call, slow in a test process.
    for _ in range(6):
        p_values = {f"m{i}": float(p) for i, p in enumerate(rng.uniform(0, 0.04, 5))}
        expected = multipletests(list(p_values.values()), alpha=0.05, method="holm")[0]
        result = stats.holm(p_values, 0.05)
        assert [result[name][0] for name in p_values] == [bool(x) for x in expected]


def test_holm__levels__are_alpha_over_the_remaining_count() -> None:
    result = stats.holm({"a": 0.02, "b": 0.001, "c": 0.2}, 0.05)
    assert result["b"] == (True, pytest.approx(0.05 / 3))
    assert result["a"] == (True, pytest.approx(0.05 / 2))
    assert result["c"] == (False, pytest.approx(0.05))


def test_benjamini_hochberg__published_example__rejects_the_four_smallest() -> None:
    # Benjamini & Hochberg (1995), §4: 15 p-values from a clinical trial; at q = 0.05 the
    # procedure rejects the four smallest (Bonferroni-type procedures reject three).
    p_values = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240]
    p_values += [0.4262, 0.5719, 0.6528, 0.7590, 1.0]
    result = stats.benjamini_hochberg({f"h{i}": p for i, p in enumerate(p_values)}, 0.05)
    assert [name for name, (rejected, _) in result.items() if rejected] == ["h0", "h1", "h2", "h3"]
    holm = stats.holm({f"h{i}": p for i, p in enumerate(p_values)}, 0.05)
    assert sum(rejected for rejected, _ in holm.values()) == 3
