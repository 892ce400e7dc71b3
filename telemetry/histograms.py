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


def _whole_ms_starts(largest: int) -> list[int]:
    """The smallest whole number of milliseconds that bucket_of puts in each bucket from 1 up
    to bucket_of(largest), found by bisection on bucket_of itself (which never decreases)."""
    starts = []
    for bucket in range(1, bucket_of(largest) + 1):
        low, high = 0, largest  # bucket_of(low) < bucket <= bucket_of(high)
        while high - low > 1:
            middle = (low + high) // 2
            if bucket_of(middle) >= bucket:
                high = middle
            else:
                low = middle
        starts.append(high)
    return starts


# bucket_of of every whole number of milliseconds below 2**17 (131 s), filled in from the first
# value of each bucket (so it agrees with bucket_of exactly): the buckets of a batch's latencies
# are then one C-level list lookup each, no log2 and no Python frame per value. 128 Ki pointers
# to small cached ints, 1 MiB per process.
_WHOLE_MS_TABLE_SIZE = 2**17
WHOLE_MS_BUCKETS: list[int] = [0]
for _bucket, _start in enumerate(_whole_ms_starts(_WHOLE_MS_TABLE_SIZE), 1):
    WHOLE_MS_BUCKETS.extend([_bucket - 1] * (_start - len(WHOLE_MS_BUCKETS)))
WHOLE_MS_BUCKETS.extend(
    [bucket_of(_WHOLE_MS_TABLE_SIZE - 1)] * (_WHOLE_MS_TABLE_SIZE - len(WHOLE_MS_BUCKETS))
)


def buckets_of_whole_ms(values: list[int]) -> Iterable[int]:
    """bucket_of of each value, for whole numbers of milliseconds (ingest's durations)."""
    if values and max(values) < _WHOLE_MS_TABLE_SIZE and min(values) >= 0:
        return map(WHOLE_MS_BUCKETS.__getitem__, values)
    return map(bucket_of, values)


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
