"""Log-bucketed latency histograms and the percentiles read from them (no Django).

A value v in milliseconds falls in bucket 0 when v < 1, otherwise in bucket
1 + floor(SUBBUCKETS * log2(v)): eight buckets per doubling, each about 9 % wide, so that
a percentile read back from the buckets is within about 4.5 % of the exact value. Buckets are
small integers that rollups store as rows and concurrent ingests increment in SQL; merging
two histograms is adding their counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

SUBBUCKETS = 8
MAX_BUCKET = 32_000  # fits a SmallIntegerField; 2**(32000/8) ms is far beyond any real latency
DEFAULT_QUANTILES = (0.5, 0.95, 0.99)


def bucket_of(value_ms: float) -> int:
    """The bucket a non-negative duration falls in."""
    if value_ms < 1:
        return 0
    return min(MAX_BUCKET, 1 + math.floor(SUBBUCKETS * math.log2(value_ms)))


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """[low, high) of a bucket in milliseconds."""
    if bucket <= 0:
        return (0.0, 1.0)
    return (2 ** ((bucket - 1) / SUBBUCKETS), 2 ** (bucket / SUBBUCKETS))


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: the geometric middle of its bounds (0.5 ms for bucket 0)."""
    if bucket <= 0:
        return 0.5
    low, high = bucket_bounds(bucket)
    return math.sqrt(low * high)


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            merged[bucket] = merged.get(bucket, 0) + count
    return merged


def percentiles(
    counts: Mapping[int, int], quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> dict[float, float | None]:
    """Nearest-rank quantiles of a histogram (bucket -> count); None for an empty histogram.

    The q-quantile is the value of the bucket holding the ceil(q * n)-th smallest observation.
    """
    total = sum(count for count in counts.values() if count > 0)
    if total == 0:
        return dict.fromkeys(quantiles)
    ordered = sorted((bucket, count) for bucket, count in counts.items() if count > 0)
    result: dict[float, float | None] = {}
    for quantile in quantiles:
        if not 0 <= quantile <= 1:
            raise ValueError(f"quantile {quantile} is outside [0, 1]")
        rank = max(1, math.ceil(quantile * total))
        seen = 0
        for bucket, count in ordered:
            seen += count
            if seen >= rank:
                result[quantile] = bucket_value(bucket)
                break
    return result
