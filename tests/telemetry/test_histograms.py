import random

import pytest

from telemetry.histograms import (
    SUBBUCKETS,
    bucket_bounds,
    bucket_of,
    bucket_value,
    buckets_of_whole_ms,
    merge,
    percentiles,
)


@pytest.mark.parametrize("value", [1, 1.5, 2, 37, 199.9, 200, 2000, 30_000, 600_000])
def test_bucket_of__value__lies_within_its_bucket_bounds(value):
    low, high = bucket_bounds(bucket_of(value))

    assert low <= value < high


def test_bucket_of__below_one_millisecond__bucket_zero():
    assert (bucket_of(0), bucket_of(0.99)) == (0, 0)


def test_bucket_of__doubling__moves_eight_buckets():
    assert bucket_of(400) - bucket_of(200) == SUBBUCKETS


def test_bucket_of__larger_value__never_a_lower_bucket():
    values = sorted(random.Random(1).uniform(0, 100_000) for _ in range(2000))

    buckets = [bucket_of(value) for value in values]

    assert buckets == sorted(buckets)


def test_buckets_of_whole_ms__every_value_of_the_table__same_as_bucket_of():
    values = list(range(2**17))

    assert list(buckets_of_whole_ms(values)) == [bucket_of(value) for value in values]


def test_buckets_of_whole_ms__values_beyond_the_table__same_as_bucket_of():
    rng = random.Random(3)
    values = [2**17 - 1, 2**17, 2**31 - 1, *(rng.randrange(2**31) for _ in range(1000))]

    assert list(buckets_of_whole_ms(values)) == [bucket_of(value) for value in values]


def test_bucket_value__every_bucket__within_five_percent_of_its_bounds():
    for bucket in range(1, 200):
        low, high = bucket_bounds(bucket)
        assert (bucket_value(bucket) - low) / low < 0.05
        assert (high - bucket_value(bucket)) / high < 0.05


def test_percentiles__lognormal_latencies__within_five_percent_of_exact():
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(7, 0.6) for _ in range(20_000))
    counts: dict[int, int] = {}
    for value in values:
        counts[bucket_of(value)] = counts.get(bucket_of(value), 0) + 1

    result = percentiles(counts)

    for quantile in (0.5, 0.95, 0.99):
        exact = values[int(quantile * len(values)) - 1]
        estimate = result[quantile]
        assert estimate is not None
        assert abs(estimate - exact) / exact < 0.05


def test_percentiles__empty_histogram__none():
    assert percentiles({}) == {0.5: None, 0.95: None, 0.99: None}


def test_percentiles__single_observation__every_quantile_is_its_bucket():
    result = percentiles({bucket_of(250): 1})

    assert set(result.values()) == {bucket_value(bucket_of(250))}


def test_percentiles__p95_of_95_fast_and_5_slow__still_fast():
    result = percentiles({bucket_of(100): 95, bucket_of(5000): 5}, (0.95, 0.96))

    assert result[0.95] == bucket_value(bucket_of(100))
    assert result[0.96] == bucket_value(bucket_of(5000))


def test_percentiles__quantile_outside_zero_to_one__raises():
    with pytest.raises(ValueError, match="outside"):
        percentiles({1: 1}, (1.5,))


def test_merge__two_histograms__adds_counts_per_bucket():
    assert merge([{1: 2, 3: 1}, {3: 4, 9: 1}]) == {1: 2, 3: 5, 9: 1}
