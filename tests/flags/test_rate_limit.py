"""Leased per-second budgets: exact for small limits, one shared-count round trip per chunk."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache

from flags.serving import rate_limit
from flags.snapshots import RedisLink, redis_link

WINDOW = 1_700_000_000


@pytest.fixture(params=["cache", "redis"])
def link(request: pytest.FixtureRequest) -> Iterator[RedisLink | None]:
    """The shared count in the Django cache (no Redis) or in Redis (the services pass)."""
    if request.param == "cache":
        cache.clear()
        yield None
        return
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (the PostgreSQL + Redis pass)")
    yield redis_link()


@pytest.fixture
def key() -> str:
    return f"test-rate:{uuid.uuid4().hex}"


def shared_count(link: RedisLink | None, key: str, window: int = WINDOW) -> int:
    name = f"{key}:{window}"
    value = cache.get(name) if link is None else link.client.get(name)
    return int(value or 0)


def add_elsewhere(link: RedisLink | None, key: str, amount: int) -> None:
    """Another process leasing from the same window."""
    name = f"{key}:{WINDOW}"
    if link is None:
        cache.set(name, shared_count(link, key) + amount, timeout=2)
    else:
        link.client.incrby(name, amount)


@pytest.mark.parametrize(
    ("limit", "chunk"), [(1, 1), (99, 1), (100, 1), (250, 2), (10_000, 100), (10**7, 100)]
)
def test_chunk_for__one_percent_between_1_and_100(limit: int, chunk: int) -> None:
    assert rate_limit.chunk_for(limit) == chunk


def test_take__small_limit__exact_then_refused_until_next_window(link: RedisLink | None, key: str) -> None:
    taken = [rate_limit.take(key, 3, WINDOW + 0.1 * i, link) for i in range(5)]

    assert taken == [True, True, True, False, False]
    assert rate_limit.take(key, 3, WINDOW + 1.0, link)


def test_take__large_limit__one_shared_count_update_per_chunk(link: RedisLink | None, key: str) -> None:
    # limit 1,000: leases of 10, so 25 calls lease three times.
    assert all(rate_limit.take(key, 1000, WINDOW + 0.5, link) for _ in range(25))

    assert shared_count(link, key) == 30


def test_take__other_processes_spend_the_window__the_rest_of_the_budget_then_refused(
    link: RedisLink | None, key: str
) -> None:
    assert rate_limit.take(key, 1000, WINDOW, link)  # leases 10, spends 1
    add_elsewhere(link, key, 985)  # the shared count is now 995

    # 9 left of the lease, then a lease of which only 5 fit under the limit: 14 calls in all.
    taken = [rate_limit.take(key, 1000, WINDOW, link) for _ in range(16)]

    assert taken == [True] * 14 + [False, False]
    assert shared_count(link, key) == 1015  # the refused lease counted too


def test_take__exhausted_window__no_more_shared_count_updates(link: RedisLink | None, key: str) -> None:
    assert rate_limit.take(key, 1, WINDOW, link)
    assert not rate_limit.take(key, 1, WINDOW, link)

    for _ in range(5):
        assert not rate_limit.take(key, 1, WINDOW, link)

    assert shared_count(link, key) == 2


def test_take__shared_count_unreachable__fails_open(key: str) -> None:
    dead = RedisLink("redis://127.0.0.1:1/0")

    assert all(rate_limit.take(key, 1, WINDOW, dead) for _ in range(3))
