"""Per-key budgets of calls per one-second window, shared by every process.

The shared count lives in Redis (or, without Redis, the Django cache). Asking it on every call
would put a round trip on the serving path, so each process *leases* part of a window's budget
in chunks (one `INCRBY chunk` + `EXPIRE`) and spends the lease locally. A chunk is 1 % of the
limit (at least 1, at most 100): exact for small limits, and for large ones a key near its
limit may be refused at most `chunk - 1` calls per process early (leased, unspent calls are
lost when the window ends). Once a window is exhausted this process stops asking until the
next one. The limit fails open: no shared count reachable, no limit, rather than no flags; a
Redis failure marks the process's link down (one warning), so that an outage does not cost
every call a timeout until the link's listener sees Redis back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import redis
from django.core.cache import cache

from flags.snapshots import RedisLink

WINDOW_EXPIRY_SECONDS = 2
MAX_CHUNK = 100
# Windows are whole seconds: the next one always starts within a second.
RETRY_AFTER_SECONDS = 1


@dataclass(slots=True)
class _Lease:
    window: int
    remaining: int
    exhausted: bool = False


_leases: dict[str, _Lease] = {}
_leases_lock = threading.Lock()


def chunk_for(limit: int) -> int:
    """How many calls one lease takes from the shared count."""
    return max(1, min(MAX_CHUNK, limit // 100))


def take(key: str, limit: int, now: float, link: RedisLink | None) -> bool:
    """Spend one call of `key`'s budget for the window `now` falls in; False when over it."""
    if link is not None and link.down:
        return True
    window = int(now)
    with _leases_lock:
        lease = _leases.get(key)
        if lease is not None and lease.window == window:
            if lease.exhausted:
                return False
            if lease.remaining > 0:
                lease.remaining -= 1
                return True
    chunk = chunk_for(limit)
    try:
        total = _add(link, f"{key}:{window}", chunk)
    except (redis.RedisError, OSError) as exc:
        if link is not None:
            link.mark_down(exc)
        return True
    granted = min(chunk, limit - (total - chunk))
    with _leases_lock:
        lease = _leases.get(key)
        if lease is None or lease.window != window:
            lease = _leases[key] = _Lease(window, 0)
        if granted <= 0:
            lease.exhausted = True
            return False
        lease.remaining += granted - 1
    return True


def _add(link: RedisLink | None, key: str, amount: int) -> int:
    """Add to the window's shared count and return the new total."""
    if link is not None:
        pipeline = link.client.pipeline(transaction=False)
        pipeline.incrby(key, amount)
        pipeline.expire(key, WINDOW_EXPIRY_SECONDS)
        total, _ = pipeline.execute()
        return int(total)
    try:
        if cache.add(key, amount, timeout=WINDOW_EXPIRY_SECONDS):
            return amount
        return cache.incr(key, amount)
    except ValueError:  # the window's key expired between add and incr
        return amount


def forget_leases() -> None:
    """Drop this process's leases (tests: each starts from nothing)."""
    with _leases_lock:
        _leases.clear()
