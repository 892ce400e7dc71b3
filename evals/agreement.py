"""Agreement of a judge with human labels (Cohen's κ), and the rule that makes a judge acting.

Pure: no Django. statsmodels is imported inside the function (web workers import this module).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# rollout-analysis.md §8.3-§8.4: below substantial agreement (κ 0.6, Landis & Koch) or on too
# few labels a judge is advisory: shown, but it neither passes a gate nor drives a decision.
ACTING_MIN_KAPPA = 0.6
ACTING_MIN_LABELS = 100


def is_acting(*, kappa: float | None, n_labels: int) -> bool:
    return kappa is not None and kappa >= ACTING_MIN_KAPPA and n_labels >= ACTING_MIN_LABELS


@dataclass(frozen=True)
class Agreement:
    n: int
    agreement: float | None
    kappa: float | None


def cohens_kappa(pairs: Sequence[tuple[bool, bool]]) -> Agreement:
    """Observed agreement and Cohen's κ of (human, judge) pass/fail pairs.

    κ = (p_o - p_e) / (1 - p_e) (Cohen 1960), computed by statsmodels'
    `inter_rater.cohens_kappa` on the 2x2 contingency table. κ is undefined (None) without
    pairs, or when both raters gave one same class to everything (p_e = 1).
    """
    n = len(pairs)
    if n == 0:
        return Agreement(n=0, agreement=None, kappa=None)
    table = [[0, 0], [0, 0]]
    for human, judge in pairs:
        table[int(human)][int(judge)] += 1
    agreement = (table[0][0] + table[1][1]) / n
    rows = (table[0][0] + table[0][1], table[1][0] + table[1][1])
    cols = (table[0][0] + table[1][0], table[0][1] + table[1][1])
    expected = (rows[0] * cols[0] + rows[1] * cols[1]) / (n * n)
    if expected >= 1.0:
        return Agreement(n=n, agreement=agreement, kappa=None)
    from statsmodels.stats.inter_rater import cohens_kappa as statsmodels_kappa

    kappa = float(statsmodels_kappa(table, return_results=False))
    return Agreement(n=n, agreement=agreement, kappa=max(-1.0, min(1.0, kappa)))
