"""Anytime-valid statistics of a canary against its control (pure: no Django).

A rollout tick re-reads cumulative per-arm aggregates and tests them again, every minute, for
hours: a fixed-sample test repeated like that rejects a true null far more often than its α
(the peeking problem). Every test here is therefore *time-uniform*: its error bound holds over
all ticks at once, so the analysis may look as often as it likes.

- `srm_sequential_p_value`: sample-ratio mismatch, anytime-valid: the Dirichlet-multinomial
  Bayes factor of Lindon & Malek (2022), read through Ville's inequality. It is the test that
  pauses; `srm_p_value`, Pearson's chi-square goodness of fit (scipy), is the fixed-sample
  reading shown beside it, which only holds a promotion back (docs/analysis.md, "Health").
- `compare_means`: canary − control for proportions and means, with a margin δ, from a one-sided
  normal-mixture martingale applied as an asymptotic confidence sequence (Robbins 1970;
  Howard, Ramdas, McAuliffe & Sekhon 2021; Waudby-Smith, Arnold, Wu, Wang & Ramdas 2024).
- `compare_quantiles`: a quantile (p95) of each arm from log-bucketed histograms, bracketed by
  order statistics whose ranks come from a time-uniform bound on a binomial count (Howard &
  Ramdas 2022), combined into bounds on the difference.
- `compare_paired`: the mean of paired differences (shadow replay), d in {−1, 0, 1}, with a
  betting confidence sequence for a bounded mean (Waudby-Smith & Ramdas 2023).
- `holm` (Holm's step-down, checked against statsmodels) and `benjamini_hochberg`
  (statsmodels' `multipletests`).

Sign convention: every comparison is oriented so that a positive difference is *bad* for the
candidate; "regression" means the lower bound exceeds the margin, "non-inferior" means the upper
bound is below it. scipy and statsmodels are imported inside functions (web workers import this
module through the analysis).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from telemetry import histograms

_SQRT2 = math.sqrt(2.0)


def _srm_totals(observed: Sequence[int], weights: Sequence[float]) -> tuple[int, float] | None:
    """(units, weight sum) of an SRM check's arguments; None when there is nothing to test."""
    if len(observed) != len(weights) or len(observed) < 2:
        raise ValueError("one expected weight per arm, at least two arms")
    total = sum(observed)
    weight_sum = sum(weights)
    if total == 0 or weight_sum <= 0:
        return None
    return total, weight_sum


def srm_p_value(observed: Sequence[int], weights: Sequence[float]) -> float | None:
    """p-value of the exposure counts against the configured split; None without any unit.

    Pearson's chi-square goodness of fit with k − 1 degrees of freedom (Pearson 1900),
    the health check GrowthBook (gbstats `check_srm`) and Statsig run, with alarm at p < 0.001.
    """
    totals = _srm_totals(observed, weights)
    if totals is None:
        return None
    total, weight_sum = totals
    # The statistic Σ (O − E)² / E and its chi-square tail (scipy's chdtrc ufunc): the value
    # scipy.stats.chisquare returns, without its per-call argument handling on every tick.
    from scipy.special import chdtrc

    expected = [total * weight / weight_sum for weight in weights]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    return float(chdtrc(len(observed) - 1, statistic))


# Lindon & Malek's own library (savvi, `Multinomial(alpha, theta_0, k=100)`) centres the
# Dirichlet mixture on the expected split with a concentration of 100.
SRM_CONCENTRATION = 100.0


def srm_sequential_p_value(
    observed: Sequence[int], weights: Sequence[float], *, concentration: float = SRM_CONCENTRATION
) -> float | None:
    """Anytime-valid p-value of the exposure counts against the configured split; None without
    any unit.

    Lindon & Malek (2022), "Anytime-Valid Inference for Multinomial Count Data", NeurIPS 35, §3:
    under H0 the n units fall in the arms as a multinomial with probabilities p0 (the weights,
    normalised); mixing the alternatives over a Dirichlet(k·p0) prior gives the Bayes factor

        BF_n = Γ(k) / Γ(k + n) · Π_i Γ(k·p0_i + n_i) / Γ(k·p0_i) / Π_i p0_i^n_i

    (the Dirichlet-multinomial over the multinomial probability of the same counts: the
    multinomial coefficients cancel). BF_n is a nonnegative martingale of mean 1 under H0, so
    by Ville's inequality P(BF_n ≥ 1/α for some n) ≤ α, and min(1, 1/BF_n) may be compared with
    α at every tick, however many there are. The counts are cumulative, read at ticks: a
    subsequence of the units' own sequence, which Ville's bound covers.
    """
    totals = _srm_totals(observed, weights)
    if totals is None:
        return None
    total, weight_sum = totals
    log_bf = math.lgamma(concentration) - math.lgamma(concentration + total)
    for count, weight in zip(observed, weights, strict=True):
        p0 = weight / weight_sum
        if p0 <= 0:
            if count:
                return 0.0  # a unit in an arm that should get none: the split is certainly wrong
            continue
        prior = concentration * p0
        log_bf += math.lgamma(prior + count) - math.lgamma(prior) - count * math.log(p0)
    return 1.0 if log_bf <= 0 else math.exp(-log_bf)


# -- The normal-mixture boundary -----------------------------------------------------------------


# ρ is tuned once, at the conventional 5 % level, whatever level a bound is then read at: every
# p-value and bound of a metric comes from one fixed martingale (a ρ picked after seeing the data
# would void Ville's inequality), and p <= α holds exactly when the α-level bound clears the margin.
TUNING_ALPHA = 0.05


def tuning_eta_squared(*, n: float, n_star: float, alpha: float = TUNING_ALPHA) -> float:
    """η² = n·ρ², with ρ chosen so that the boundary is tightest when n reaches n_star.

    ρ² = (−2 ln α + ln(−2 ln α + 1)) / n*: Waudby-Smith et al. (2024, "Time-uniform central
    limit theory and asymptotic confidence sequences", Annals of Statistics, §2.4), the same
    tuning GrowthBook's sequential engine exposes as its "tuning parameter" N*. Any ρ > 0 gives
    a valid boundary; the tuning only moves where it is tightest.
    """
    log_alpha = math.log(alpha)
    return n * (-2.0 * log_alpha + math.log(-2.0 * log_alpha + 1.0)) / n_star


def _log_ndtr(x: float) -> float:
    """ln Φ(x), accurate in both tails (math.erfc keeps the precision erf loses)."""
    if x > -30.0:
        return math.log(0.5 * math.erfc(-x / _SQRT2))
    # Mills-ratio asymptote; the mixture never needs it for x >= 0, kept for completeness of domain.
    return -0.5 * x * x - math.log(-x) - 0.5 * math.log(2.0 * math.pi)


def log_one_sided_mixture(z: float, eta2: float) -> float:
    """ln M of the one-sided (half-normal) Gaussian mixture martingale at a standardised z.

    With unit-variance increments S_t and a half-normal mixing density of scale ρ over λ >= 0,
    ∫ exp(λS − λ²t/2) dF(λ) = 2 (tρ² + 1)^(-1/2) exp(x²/2) Φ(x), x = ρS / sqrt(tρ² + 1)
    (Robbins 1970; Howard et al. 2021, "Time-uniform, nonparametric, nonasymptotic confidence
    sequences", Annals of Statistics, §3 and Proposition 6's one-sided normal mixture). With
    z = S/√t and η² = tρ², x = z·η/sqrt(η² + 1). By Ville's inequality P(∃t: M_t >= 1/α) <= α.
    """
    x = z * math.sqrt(eta2 / (eta2 + 1.0))
    return math.log(2.0) - 0.5 * math.log(eta2 + 1.0) + 0.5 * x * x + _log_ndtr(x)


def one_sided_p_value(z: float, eta2: float) -> float:
    """Anytime-valid p-value of H0: effect <= 0 at standardised statistic z: min(1, 1/M)."""
    return min(1.0, math.exp(-log_one_sided_mixture(z, eta2)))


def one_sided_boundary(alpha: float, eta2: float) -> float:
    """The z at which the one-sided mixture reaches 1/α (Newton's method on ln M, convex in z).

    ln M is increasing in z for z >= 0 (d/dx of x²/2 + ln Φ(x) is x + φ(x)/Φ(x) > 0), so the root
    is unique; the bound is what Waudby-Smith et al.'s asymptotic confidence sequence plugs the
    estimated standard error into.
    """
    if not 0.0 < alpha < 0.5:
        raise ValueError("alpha must be in (0, 0.5)")
    scale = math.sqrt(eta2 / (eta2 + 1.0))
    target = math.log(1.0 / alpha)
    # Start from the two-sided closed form, always at or above the one-sided root.
    x = math.sqrt(2.0 * (target + 0.5 * math.log(eta2 + 1.0)))
    for _ in range(50):
        f = math.log(2.0) - 0.5 * math.log(eta2 + 1.0) + 0.5 * x * x + _log_ndtr(x) - target
        inverse_mills = math.exp(-0.5 * x * x - 0.5 * math.log(2.0 * math.pi) - _log_ndtr(x))
        step = f / (x + inverse_mills)
        x -= step
        if abs(step) < 1e-9 * x:
            break
    return x / scale


def two_sided_p_value(z: float, eta2: float) -> float:
    """Anytime-valid two-sided p-value: 1/M for the two-sided normal mixture (no margin).

    M = (η² + 1)^(-1/2) exp(x²/2) with x as above (Robbins 1970); its boundary at 1/α is the
    closed-form asymptotic confidence sequence of Waudby-Smith et al. (2024, Theorem 2.2) that
    GrowthBook's sequential engine uses: half-width = se·sqrt(2(η²+1)/η² · ln(sqrt(η²+1)/α)).
    """
    x2 = z * z * eta2 / (eta2 + 1.0)
    return min(1.0, math.exp(0.5 * math.log(eta2 + 1.0) - 0.5 * x2))


# -- Means and proportions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Moments:
    """n observations, their sum and their sum of squares (a proportion: total_sq == total)."""

    n: int
    total: float
    total_sq: float

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def variance(self) -> float:
        """Unbiased sample variance from the sums, s² = (Σx² − (Σx)²/n) / (n − 1): the one-pass
        "textbook" formula of Chan, Golub & LeVeque (1983, "Algorithms for computing the sample
        variance: analysis and recommendations", The American Statistician 37). With exact sums
        (the rollups' are integers) only the final doubles round, so its relative error is about
        κ²·ε, κ² = 1 + mean²/s² their condition number: below 1e-11 for a cost per call whose
        spread is over 1 % of its mean. The caller guarantees n >= 2."""
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1))


@dataclass(frozen=True)
class Comparison:
    """Canary against control on one metric, oriented so that a positive difference is bad."""

    canary: float
    control: float
    difference: float  # in the bad direction
    margin: float
    lower: float  # lower confidence-sequence bound at alpha_regression
    upper: float  # upper confidence-sequence bound at alpha_promotion
    p_value: float  # anytime-valid p-value of H0: difference <= margin
    alpha_regression: float
    alpha_promotion: float
    # Means only: what `at_regression_level` needs to move the lower bound to another level.
    standard_error: float | None = None
    eta2: float | None = None

    @property
    def regression(self) -> bool:
        return self.lower > self.margin

    @property
    def non_inferior(self) -> bool:
        return self.upper < self.margin


def _proportion_variance(moments: Moments) -> float:
    # Agresti & Caffo (2000, "Simple and effective confidence intervals for proportions and
    # differences of proportions result from adding two successes and two failures", The
    # American Statistician 54): one success and one failure added per arm keeps the variance
    # of a difference of proportions away from 0 when an arm has seen no event yet, which would
    # otherwise make a single error in the other arm look certain.
    adjusted = (moments.total + 1.0) / (moments.n + 2.0)
    return adjusted * (1.0 - adjusted)


def _sequential_comparison(
    *,
    canary: float,
    control: float,
    difference: float,
    standard_error: float,
    n_total: float,
    margin: float,
    alpha_regression: float,
    alpha_promotion: float,
    n_star: float,
) -> Comparison:
    if standard_error <= 0.0:
        # Both arms constant: no spread to test against; the point difference is the truth.
        return Comparison(
            canary=canary,
            control=control,
            difference=difference,
            margin=margin,
            lower=difference,
            upper=difference,
            p_value=0.0 if difference > margin else 1.0,
            alpha_regression=alpha_regression,
            alpha_promotion=alpha_promotion,
        )
    eta2 = tuning_eta_squared(n=n_total, n_star=n_star)
    lower_z = one_sided_boundary(alpha_regression, eta2)
    upper_z = one_sided_boundary(alpha_promotion, eta2)
    return Comparison(
        canary=canary,
        control=control,
        difference=difference,
        margin=margin,
        lower=difference - lower_z * standard_error,
        upper=difference + upper_z * standard_error,
        p_value=one_sided_p_value((difference - margin) / standard_error, eta2),
        alpha_regression=alpha_regression,
        alpha_promotion=alpha_promotion,
        standard_error=standard_error,
        eta2=eta2,
    )


def at_regression_level(comparison: Comparison, alpha: float) -> Comparison | None:
    """The same mean comparison with its lower bound read at another level (same martingale, so
    the p-value is unchanged); None for a comparison that must be recomputed (quantiles)."""
    if comparison.standard_error is None or comparison.eta2 is None:
        return None
    if comparison.standard_error <= 0.0:
        return replace(comparison, alpha_regression=alpha)
    lower = comparison.difference - one_sided_boundary(alpha, comparison.eta2) * comparison.standard_error
    return replace(comparison, lower=lower, alpha_regression=alpha)


def compare_means(
    canary: Moments,
    control: Moments,
    *,
    increase_is_bad: bool,
    margin: float,
    binary: bool,
    alpha_regression: float,
    alpha_promotion: float,
    n_star: float,
    relative_share: float = 0.0,
) -> Comparison:
    """Difference of two means (or proportions) with its asymptotic confidence sequence.

    Two-sample form as in GrowthBook's sequential engine: t = n_canary + n_control and the
    per-observation variance σ² = t·(s²_canary/n_canary + s²_control/n_control), so that
    se = σ/√t is the usual Welch standard error (Waudby-Smith et al. 2024 give the asymptotic
    CS for any estimator with a central limit theorem; the Welch difference is one). Each arm
    needs n >= 2.

    A relative margin (`margin` = `relative_share` × |control mean|) moves with the control's
    estimate, so the test is of the contrast canary − k·control with k = 1 + share (a ratio
    null, e.g. "at most 5 % costlier"), whose variance is s²_canary/n_canary + k²·s²_control/n_control:
    the Wald test of a ratio non-inferiority hypothesis (Hauschke, Kieser & Hothorn 1999, "Proof
    of safety in toxicology based on the ratio of two means for normally distributed data",
    Biometrical Journal 41; Farrington & Manning 1990, Statistics in Medicine 9, for proportions).
    Leaving k² out, as if the control's estimate were the true reference, makes the test reject
    a true null more often than α (bench/bench_decisions.py's note in docs/analysis.md).
    """
    if canary.n < 2 or control.n < 2:
        raise ValueError("each arm needs at least two observations")
    sign = 1.0 if increase_is_bad else -1.0
    # The contrast's coefficient on the control mean: sign·(c − o) − share·|o| = sign·(c − k·o).
    k = 1.0 + sign * relative_share * (1.0 if control.mean >= 0 else -1.0)
    if binary:
        variance = _proportion_variance(canary) / canary.n + k * k * _proportion_variance(control) / control.n
    else:
        variance = canary.variance / canary.n + k * k * control.variance / control.n
    return _sequential_comparison(
        canary=canary.mean,
        control=control.mean,
        difference=sign * (canary.mean - control.mean),
        standard_error=math.sqrt(variance),
        n_total=canary.n + control.n,
        margin=margin,
        alpha_regression=alpha_regression,
        alpha_promotion=alpha_promotion,
        n_star=n_star,
    )


# Bets of the paired test, as fractions of the largest bet that keeps the capital non-negative:
# the capital process is their equal-weight average (see `_log_paired_capital`).
PAIRED_BET_FRACTIONS = tuple(k / 20 for k in range(1, 20))


def paired_sign_counts(differences: Moments) -> tuple[int, int, int]:
    """(worse, ties, better) pairs of d = candidate − control passed, d in {−1, 0, 1}, read from
    n, Σd and Σd²: Σd² counts the discordant pairs, Σd their balance (exact integer sums)."""
    discordant, balance = differences.total_sq, differences.total
    better, worse = (discordant + balance) / 2, (discordant - balance) / 2
    if min(better, worse) < 0 or better != int(better) or worse != int(worse) or discordant > differences.n:
        raise ValueError("paired differences must each be -1, 0 or 1")
    return int(worse), differences.n - int(discordant), int(better)


def _log_paired_capital(bad: int, ties: int, good: int, m: float, *, against_upper: bool) -> float:
    """ln K(m): the capital of bets on the bad-direction pair differences y in {−1, 0, 1}.

    Testing by betting (Waudby-Smith & Ramdas 2023, "Estimating means of bounded random variables
    by betting", JRSS-B 86(1), §3-4): against H0: E[y] <= m, the capital Π (1 + λ(y_i − m)),
    λ in [0, 1/(1 + m)], is a non-negative supermartingale under H0 (each factor has mean
    1 + λ(E[y] − m) <= 1), so by Ville's inequality (1939) P(∃t: K_t >= 1/α) <= α. Here each
    λ = c/(1 + m) is constant, so the product depends only on how many pairs of each value there
    are, which the rollups keep; and the equal-weight average over the fractions c of
    PAIRED_BET_FRACTIONS is a supermartingale too (an average of supermartingales), never more than
    ln 19 nats below the best of those bets in hindsight, without choosing one from the data.
    `against_upper` tests H0: E[y] >= m instead, with the factors 1 + λ(m − y), λ <= 1/(1 − m).
    """
    if against_upper:
        steps = ((bad, -(1.0 - m)), (ties, m), (good, 1.0 + m))
        scale = 1.0 / (1.0 - m)
    else:
        steps = ((bad, 1.0 - m), (ties, -m), (good, -(1.0 + m)))
        scale = 1.0 / (1.0 + m)
    logs = [
        sum(count * math.log1p(c * scale * step) for count, step in steps if count)
        for c in PAIRED_BET_FRACTIONS
    ]
    top = max(logs)
    return top + math.log(sum(math.exp(value - top) for value in logs) / len(logs))


def _paired_bound(bad: int, ties: int, good: int, alpha: float, *, upper: bool) -> float:
    """The bound of the betting confidence sequence at α, by bisection on m in (−1, 1).

    ln K(m) decreases in m (each factor's d/dm is −c(1 + y)/(1 + m)² <= 0) and its mirror
    increases, so the means the test rejects form one interval and the bound is where ln K
    crosses ln(1/α) (Waudby-Smith & Ramdas 2023, §4: the confidence sequence is the set of
    means not rejected). −1 (lower) or 1 (upper) while nothing is rejected.
    """
    threshold = math.log(1.0 / alpha)
    low, high = -1.0 + 1e-12, 1.0 - 1e-12
    if upper:
        if _log_paired_capital(bad, ties, good, low, against_upper=True) >= threshold:
            return -1.0
        if _log_paired_capital(bad, ties, good, high, against_upper=True) < threshold:
            return 1.0
    else:
        if _log_paired_capital(bad, ties, good, high, against_upper=False) >= threshold:
            return 1.0
        if _log_paired_capital(bad, ties, good, low, against_upper=False) < threshold:
            return -1.0
    while high - low > 1e-7:
        middle = 0.5 * (low + high)
        rejected = _log_paired_capital(bad, ties, good, middle, against_upper=upper) >= threshold
        if rejected == upper:
            high = middle
        else:
            low = middle
    return high if upper else low


def compare_paired(
    differences: Moments,
    *,
    increase_is_bad: bool,
    margin: float,
    alpha_regression: float,
    alpha_promotion: float,
) -> Comparison:
    """Mean of paired differences d = candidate − control passed on the same inputs (shadow
    replay), d in {−1, 0, 1}, with a betting confidence sequence (`_log_paired_capital`).

    Pairing removes the between-input variance that dominates LLM quality scores, and the betting
    sequence is exact for a bounded mean at every sample size (no central limit theorem): when the
    candidate fails inputs the control passed and rarely the reverse, most pairs are ties and the
    bets grow fast, where a normal-approximation sequence would spend its width on a variance it
    has to estimate (bench/bench_decisions.py, the paired scenarios). p = min(1, 1/K(margin)).
    Needs n >= 2.
    """
    if differences.n < 2:
        raise ValueError("at least two pairs")
    if not -1.0 < margin < 1.0:
        raise ValueError("the margin of a paired difference must be in (-1, 1)")
    worse, ties, better = paired_sign_counts(differences)
    # y = the difference in the bad direction: a pair the candidate loses is +1 when a decrease is bad.
    bad, good = (better, worse) if increase_is_bad else (worse, better)
    mean = differences.mean
    return Comparison(
        canary=mean,
        control=0.0,
        difference=mean if increase_is_bad else -mean,
        margin=margin,
        lower=_paired_bound(bad, ties, good, alpha_regression, upper=False),
        upper=_paired_bound(bad, ties, good, alpha_promotion, upper=True),
        p_value=min(1.0, math.exp(-_log_paired_capital(bad, ties, good, margin, against_upper=False))),
        alpha_regression=alpha_regression,
        alpha_promotion=alpha_promotion,
    )


def two_sided_difference_p_value(canary: Moments, control: Moments, *, binary: bool, n_star: float) -> float:
    """Anytime-valid two-sided p-value of no difference in means (experiment goal metrics)."""
    if canary.n < 2 or control.n < 2:
        raise ValueError("each arm needs at least two observations")
    if binary:
        variance = _proportion_variance(canary) / canary.n + _proportion_variance(control) / control.n
    else:
        variance = canary.variance / canary.n + control.variance / control.n
    difference = canary.mean - control.mean
    if variance <= 0.0:
        return 1.0 if difference == 0.0 else 0.0
    eta2 = tuning_eta_squared(n=canary.n + control.n, n_star=n_star)
    return two_sided_p_value(difference / math.sqrt(variance), eta2)


# -- Quantiles from histograms -------------------------------------------------------------------


def quantile_rank_bounds(*, n: int, q: float, alpha: float, n_star: float) -> tuple[int, int]:
    """1-based ranks (k, u) with X_(k) <= ξ_q <= X_(u) for all n at once, with probability 1 − 2α.

    The count C_n of observations at or below the true quantile ξ_q is Binomial(n, q)
    (distribution-free: it does not depend on the shape of the latencies). A time-uniform
    bound |C_n − nq| < b_n turns into order-statistic ranks k = floor(nq − b_n) + 1 and
    u = ceil(nq + b_n) (Howard & Ramdas 2022, "Sequential estimation of quantiles with
    applications to A/B-testing and best-arm identification", Bernoulli 28, Theorem 1; the
    fixed-n version with binomial quantiles is the classical order-statistic interval of
    Conover, "Practical Nonparametric Statistics", 3rd ed., §3.2). b_n is the one-sided mixture
    boundary at α for each tail, on the binomial's standard deviation sqrt(n q (1 − q)).
    k < 1 means no lower bound yet; u > n means no upper bound yet.
    """
    if not 0.0 < q < 1.0:
        raise ValueError("q must be in (0, 1)")
    eta2 = tuning_eta_squared(n=n, n_star=n_star)
    bound = one_sided_boundary(alpha, eta2) * math.sqrt(n * q * (1.0 - q))
    return math.floor(n * q - bound) + 1, math.ceil(n * q + bound)


@dataclass(frozen=True)
class QuantileBounds:
    estimate: float | None  # nearest-rank quantile of the histogram
    lower: float  # 0 when the rank is below the first observation
    upper: float  # math.inf when the rank is beyond the last observation


class _SortedHistogram:
    """A histogram's buckets in order with running counts, to find the bucket of any rank."""

    def __init__(self, histogram: Mapping[int, int]) -> None:
        self.buckets: list[int] = []
        self.cumulative: list[int] = []
        seen = 0
        for bucket, count in sorted(histogram.items()):
            if count > 0:
                seen += count
                self.buckets.append(bucket)
                self.cumulative.append(seen)
        self.n = seen

    def bucket_of_rank(self, rank: int) -> int:
        return self.buckets[bisect.bisect_left(self.cumulative, rank)]

    def estimate(self, q: float) -> float:
        """The nearest-rank quantile, as telemetry.histograms.percentiles reads it."""
        return histograms.bucket_value(self.bucket_of_rank(max(1, math.ceil(q * self.n))))

    def bounds(self, *, q: float, alpha: float, n_star: float) -> tuple[float, float]:
        # The k-th order statistic lies in the bucket that holds the k-th observation, so it is at
        # least that bucket's lower edge; likewise the u-th is at most its bucket's upper edge.
        low_rank, high_rank = quantile_rank_bounds(n=self.n, q=q, alpha=alpha, n_star=n_star)
        lower = histograms.bucket_bounds(self.bucket_of_rank(low_rank))[0] if low_rank >= 1 else 0.0
        upper = (
            histograms.bucket_bounds(self.bucket_of_rank(high_rank))[1] if high_rank <= self.n else math.inf
        )
        return lower, upper


def quantile_bounds(histogram: Mapping[int, int], *, q: float, alpha: float, n_star: float) -> QuantileBounds:
    """Time-uniform bounds on one arm's q-quantile from its histogram, each tail at α."""
    ordered = _SortedHistogram(histogram)
    if ordered.n == 0:
        return QuantileBounds(estimate=None, lower=0.0, upper=math.inf)
    lower, upper = ordered.bounds(q=q, alpha=alpha, n_star=n_star)
    return QuantileBounds(estimate=histograms.percentiles(histogram, (q,))[q], lower=lower, upper=upper)


def _quantile_difference_bounds(
    canary: _SortedHistogram,
    control: _SortedHistogram,
    *,
    q: float,
    alpha: float,
    n_star: float,
    increase_is_bad: bool,
) -> tuple[float, float]:
    """(lower, upper) of the bad-direction difference, each arm's tail at α/2 (Bonferroni)."""
    canary_lower, canary_upper = canary.bounds(q=q, alpha=alpha / 2.0, n_star=n_star / 2.0)
    control_lower, control_upper = control.bounds(q=q, alpha=alpha / 2.0, n_star=n_star / 2.0)
    if increase_is_bad:
        return canary_lower - control_upper, canary_upper - control_lower
    return control_lower - canary_upper, control_upper - canary_lower


def compare_quantiles(
    canary: Mapping[int, int],
    control: Mapping[int, int],
    *,
    q: float,
    increase_is_bad: bool,
    margin: float,
    alpha_regression: float,
    alpha_promotion: float,
    n_star: float,
) -> Comparison:
    """Difference of the q-quantiles of two histograms, with time-uniform bounds.

    The p-value is the smallest α at which the lower bound clears the margin (found by
    bisection on log α: the bound only moves when a rank crosses a bucket, so it is a step
    function of α and bisection to 5 % relative precision is exact enough to rank p-values
    for Holm). Both histograms must be non-empty.
    """
    canary_sorted, control_sorted = _SortedHistogram(canary), _SortedHistogram(control)
    if canary_sorted.n == 0 or control_sorted.n == 0:
        raise ValueError("both histograms need observations")
    canary_estimate, control_estimate = canary_sorted.estimate(q), control_sorted.estimate(q)
    sign = 1.0 if increase_is_bad else -1.0
    lower, _ = _quantile_difference_bounds(
        canary_sorted,
        control_sorted,
        q=q,
        alpha=alpha_regression,
        n_star=n_star,
        increase_is_bad=increase_is_bad,
    )
    _, upper = _quantile_difference_bounds(
        canary_sorted,
        control_sorted,
        q=q,
        alpha=alpha_promotion,
        n_star=n_star,
        increase_is_bad=increase_is_bad,
    )

    def clears(alpha: float) -> bool:
        bound, _ = _quantile_difference_bounds(
            canary_sorted, control_sorted, q=q, alpha=alpha, n_star=n_star, increase_is_bad=increase_is_bad
        )
        return bound > margin

    if not clears(0.49):
        p_value = 1.0
    elif clears(1e-9):
        p_value = 1e-9
    else:
        low, high = math.log(1e-9), math.log(0.49)  # clears(high) holds, clears(low) does not
        while high - low > 0.05:
            middle = 0.5 * (low + high)
            if clears(math.exp(middle)):
                high = middle
            else:
                low = middle
        p_value = math.exp(high)
    return Comparison(
        canary=canary_estimate,
        control=control_estimate,
        difference=sign * (canary_estimate - control_estimate),
        margin=margin,
        lower=lower,
        upper=upper,
        p_value=p_value,
        alpha_regression=alpha_regression,
        alpha_promotion=alpha_promotion,
    )


# -- Multiplicity --------------------------------------------------------------------------------


def holm(p_values: Mapping[str, float], alpha: float) -> dict[str, tuple[bool, float]]:
    """Holm's step-down rejections, and the level each p-value was held to.

    Holm (1979): sort the K p-values, compare the j-th smallest (1-based) with α / (K − j + 1),
    reject until the first one that fails. It controls the family-wise error rate; fed
    anytime-valid p-values it controls it over all ticks at once, because a false rejection
    needs some true null's p-value to fall below α/|true nulls| at some tick, and each does so
    with probability at most α/|true nulls|. Written out rather than taken from statsmodels'
    `multipletests(method="holm")` (the tests check they agree) because that function runs a full
    `gc.collect()` on every call, a cost a tick would pay on every suspicious metric.
    """
    names = sorted(p_values, key=lambda name: p_values[name])
    result: dict[str, tuple[bool, float]] = {}
    rejecting = True
    for rank, name in enumerate(names):
        level = alpha / (len(names) - rank)
        rejecting = rejecting and p_values[name] <= level
        result[name] = (rejecting, level)
    return {name: result[name] for name in p_values}


def benjamini_hochberg(p_values: Mapping[str, float], alpha: float) -> dict[str, tuple[bool, float]]:
    """Benjamini-Hochberg (1995) rejections and adjusted p-values (statsmodels `fdr_bh`)."""
    if not p_values:
        return {}
    from statsmodels.stats.multitest import multipletests

    names = list(p_values)
    reject, adjusted, _, _ = multipletests([p_values[name] for name in names], alpha=alpha, method="fdr_bh")
    return {
        name: (bool(rejected), float(p)) for name, rejected, p in zip(names, reject, adjusted, strict=True)
    }
