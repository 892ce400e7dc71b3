"""The statistics the eval gate decides with: pass-rate intervals and paired non-inferiority.

Pure functions over counts and score lists, no Django. statsmodels and scipy are imported inside
the functions: they take about a second to import, which a web worker should not pay at start.

Conventions: a *difference* is always candidate minus baseline, so a regression is negative, and
non-inferiority with margin δ means "the candidate is at most δ worse": the interval's lower end
lies above -δ. Two-sided intervals at 95 % make each one-sided test a 2.5 % test, the usual
non-inferiority convention (ICH E9, section 5.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
# Resamples are drawn this many at a time: 10,000 cases x 2,000 resamples at once is 160 MB.
BOOTSTRAP_BATCH = 100


def wilson_interval(successes: int, n: int, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a pass rate (Wilson 1927; Newcombe 1998, method 3).

    With no trials there is no evidence: the interval is all of [0, 1].
    """
    _check_counts(successes, n)
    if n == 0:
        return 0.0, 1.0
    # Closed form (Newcombe 1998, eq. 3): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n). An
    # eval run's summary computes it as it finishes, so no second of statsmodels import on its path.
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p, z2 = successes / n, z * z
    centre, spread = p + z2 / (2 * n), z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z2 / n)), min(1.0, (centre + spread) / (1 + z2 / n))


def wilson_lower_bound(successes: int, n: int, *, confidence: float = CONFIDENCE) -> float:
    return wilson_interval(successes, n, confidence=confidence)[0]


def mcnemar_exact_p(*, candidate_only: int, baseline_only: int) -> float:
    """Two-sided exact McNemar p-value: do candidate and baseline differ on the discordant cases?

    `candidate_only` counts cases only the candidate passed, `baseline_only` those only the
    baseline passed. This tests equality, not non-inferiority: the gate reports it as evidence
    and decides with `paired_noninferiority`.
    """
    _check_counts(candidate_only, candidate_only + baseline_only)
    _check_counts(baseline_only, candidate_only + baseline_only)
    if candidate_only + baseline_only == 0:
        return 1.0
    from statsmodels.stats.contingency_tables import mcnemar

    # Only the off-diagonal cells enter the exact test (a binomial test of b against b + c).
    table = [[0, candidate_only], [baseline_only, 0]]
    return float(mcnemar(table, exact=True).pvalue)


@dataclass(frozen=True, slots=True)
class PairedProportions:
    """Tango's paired comparison of two pass rates on the same n cases."""

    n: int
    difference: float  # candidate pass rate minus baseline pass rate
    lower: float  # lower end of the two-sided interval of the difference
    upper: float
    margin: float
    z: float  # Tango's score statistic at the margin, H0: difference <= -margin
    p_value: float  # one-sided
    non_inferior: bool


def _tango_z(b: int, c: int, n: int, delta0: float) -> float:
    """Tango's score statistic for H0: p_candidate - p_baseline = delta0 on n pairs.

    Tango T. (1998) "Equivalence test and confidence interval for the difference in proportions
    for the paired-sample design", Statistics in Medicine 17:891-908, equations (3)-(5):
    Z = (b - c - n·Δ0) / sqrt(n·(2·q + Δ0·(1 - Δ0))), where q is the maximum likelihood
    estimate of the baseline-only cell probability under the constraint Δ = Δ0, the root of
    2n·q² + (-b - c + (2n - b + c)·Δ0)·q - c·Δ0·(1 - Δ0) = 0.
    """
    numerator = b - c - n * delta0
    if numerator == 0:
        return 0.0
    a = 2 * n
    bb = -b - c + (2 * n - b + c) * delta0
    cc = -c * delta0 * (1 - delta0)
    q = (math.sqrt(max(bb * bb - 4 * a * cc, 0.0)) - bb) / (2 * a)
    variance = n * (2 * q + delta0 * (1 - delta0))
    if variance <= 0:
        return math.copysign(math.inf, numerator)
    return numerator / math.sqrt(variance)


def paired_noninferiority(
    *, candidate_only: int, baseline_only: int, n: int, margin: float, confidence: float = CONFIDENCE
) -> PairedProportions:
    """Is the candidate's pass rate at most `margin` below the baseline's, on the same cases?

    McNemar's test answers "are they different", which cannot show non-inferiority; Tango's
    score test with a shifted null (H0: Δ ≤ -margin) can, and inverting the same statistic gives
    the interval (Tango 1998; recommended by Fagerland, Lydersen & Laake 2014, "Recommended tests
    and confidence intervals for paired binomial proportions", Statistics in Medicine 33:2850).
    """
    _check_counts(candidate_only + baseline_only, n)
    if not 0 <= margin < 1:
        raise ValueError("margin must be in [0, 1)")
    if n == 0:
        return PairedProportions(0, 0.0, -1.0, 1.0, margin, 0.0, 1.0, False)
    from scipy.optimize import brentq
    from scipy.stats import norm

    b, c = candidate_only, baseline_only
    difference = (b - c) / n
    z_crit = float(norm.ppf(1 - (1 - confidence) / 2))
    edge = 1e-12
    # Z decreases in Δ0 and is 0 at the observed difference, so each limit is one bracketed root.
    lower = -1.0 if b - c == -n else brentq(lambda d: _tango_z(b, c, n, d) - z_crit, -1 + edge, difference)
    upper = 1.0 if b - c == n else brentq(lambda d: _tango_z(b, c, n, d) + z_crit, difference, 1 - edge)
    z = _tango_z(b, c, n, -margin)
    p_value = float(norm.sf(z))
    return PairedProportions(
        n=n,
        difference=difference,
        lower=float(lower),
        upper=float(upper),
        margin=margin,
        z=z,
        p_value=p_value,
        non_inferior=p_value < (1 - confidence) / 2,
    )


@dataclass(frozen=True, slots=True)
class PairedMeans:
    """A paired bootstrap interval of the mean score difference, candidate minus baseline."""

    n: int
    difference: float
    lower: float
    upper: float
    margin: float
    non_inferior: bool


def paired_bootstrap(
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    margin: float,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> PairedMeans:
    """Bootstrap the mean of per-case score differences, resampling cases (pairs) together.

    Efron B. & Tibshirani R. J. (1993) An Introduction to the Bootstrap, ch. 14 (the BCa
    interval); resampling pairs keeps each case's candidate and baseline scores together, so
    between-case variance cancels. Seeded, so a stored verdict can be recomputed exactly.
    """
    if len(candidate) != len(baseline):
        raise ValueError("candidate and baseline must score the same cases")
    if not 0 <= margin < 1:
        raise ValueError("margin must be in [0, 1)")
    n = len(candidate)
    if n == 0:
        return PairedMeans(0, 0.0, -1.0, 1.0, margin, False)
    import numpy as np
    from scipy.stats import bootstrap

    differences = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    mean = float(differences.mean())
    if n == 1 or float(np.ptp(differences)) == 0.0:
        # Every resample has the same mean: the interval is the point (BCa would divide by zero).
        return PairedMeans(n, mean, mean, mean, margin, mean > -margin)
    result = bootstrap(
        (differences,),
        np.mean,
        n_resamples=n_resamples,
        batch=BOOTSTRAP_BATCH,
        confidence_level=confidence,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    lower, upper = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return PairedMeans(n, mean, lower, upper, margin, lower > -margin)


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"counts out of range: {successes} of {n}")
