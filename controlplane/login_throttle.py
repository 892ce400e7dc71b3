"""Login throttling: failed passwords counted per account and per client address.

A small counter in the Django cache rather than django-axes: the cache is already Redis in the
distributed setup (one count across every web process) and the in-process cache on the
embedded default, so nothing new runs; axes would add a middleware on every request (the
serving fast path refuses to run beside an unknown one), a table written on every failure and
an authentication backend, and we write our own audit entry for a lockout either way.

Each counter is a fixed window: the first failure starts it, FLAGSTAFF_LOGIN_LOCKOUT_SECONDS
later it is gone. An account (or address) with as many failures as its limit in the window is
refused, right password or not, until the window ends; a successful login clears the account's
count. The count fails open (logged) when the cache cannot be reached: Redis being down must
not lock every operator out.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from controlplane import audit
from controlplane.audit import Actor, AuditTarget

logger = logging.getLogger(__name__)

KEY_PREFIX = "flagstaff:login-failures"


@dataclass(frozen=True, slots=True)
class _Counter:
    kind: str  # "account" or "address"
    key: str
    limit: int


def _counters(username: str, address: str) -> list[_Counter]:
    # Usernames are hashed: the key is a fixed size whatever was typed, and no account name
    # sits in the cache.
    account = hashlib.sha256(username.strip().casefold().encode()).hexdigest()
    counters = [
        _Counter(
            "account", f"{KEY_PREFIX}:account:{account}", settings.FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ACCOUNT
        ),
        _Counter(
            "address", f"{KEY_PREFIX}:address:{address}", settings.FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ADDRESS
        ),
    ]
    return [counter for counter in counters if counter.limit > 0]


def client_address(request: HttpRequest) -> str:
    """The address a login came from, for the per-address counter.

    Behind FLAGSTAFF_TRUSTED_PROXY_HOPS reverse proxies, each appending the address it received
    from to X-Forwarded-For, the client's address is that many entries from the right end of
    the header (the entries further left were written by the client and can be forged); the
    same rule as Werkzeug's ProxyFix(x_for=N). Without proxies, or when the header is shorter
    than the trusted hops (a request that did not come through them), REMOTE_ADDR.
    """
    remote = str(request.META.get("REMOTE_ADDR", ""))
    hops = settings.FLAGSTAFF_TRUSTED_PROXY_HOPS
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    forwarded = [part for part in forwarded if part]
    return forwarded[-hops] if len(forwarded) >= hops else remote


def refusal_message(kind: str) -> str:
    minutes = max(1, -(-settings.FLAGSTAFF_LOGIN_LOCKOUT_SECONDS // 60))
    who = "for this account" if kind == "account" else "from your address"
    return (
        f"Too many failed logins {who}: logging in is paused for up to {minutes} minutes. "
        "Wait, or ask an administrator to check the audit log."
    )


def locked_out(*, username: str, address: str) -> str | None:
    """ "account" or "address" when that counter is at its limit, else None."""
    counters = _counters(username, address)
    try:
        counts = cache.get_many([counter.key for counter in counters])
    except (redis.RedisError, OSError):
        logger.warning("login throttle: the failure counts cannot be read; not throttling", exc_info=True)
        return None
    for counter in counters:
        if counts.get(counter.key, 0) >= counter.limit:
            return counter.kind
    return None


def record_failure(*, username: str, address: str) -> str | None:
    """Count a wrong password; the kind of lockout this failure started ("account" first), or None.

    Each lockout is audited once, by the failure that reaches its limit.
    """
    started = []
    for counter in _counters(username, address):
        try:
            count = _increment(counter.key)
        except (redis.RedisError, OSError):
            logger.warning("login throttle: a failure cannot be counted; not throttling", exc_info=True)
            return None
        if count == counter.limit:
            started.append(counter)
    for counter in started:
        target = (
            AuditTarget(type="auth.account", id=username[:150], label=username[:150])
            if counter.kind == "account"
            else AuditTarget(type="auth.client_address", id=address, label=address)
        )
        audit.record(
            actor=Actor.system("login-throttle"),
            action="auth.login_locked_out",
            target=target,
            changes={
                "locked": counter.kind,
                "username": username[:150],
                "address": address,
                "failures": counter.limit,
                "for_seconds": settings.FLAGSTAFF_LOGIN_LOCKOUT_SECONDS,
            },
            reason=f"{counter.limit} failed logins within {settings.FLAGSTAFF_LOGIN_LOCKOUT_SECONDS} s",
        )
    return started[0].kind if started else None


def record_success(*, username: str) -> None:
    """A successful login clears its account's count (never the address's)."""
    try:
        cache.delete_many([counter.key for counter in _counters(username, "") if counter.kind == "account"])
    except (redis.RedisError, OSError):
        logger.warning("login throttle: a count cannot be cleared", exc_info=True)


def _increment(key: str) -> int:
    window = settings.FLAGSTAFF_LOGIN_LOCKOUT_SECONDS
    cache.add(key, 0, timeout=window)
    try:
        return cache.incr(key)
    except ValueError:  # the window's key expired between add and incr
        cache.add(key, 1, timeout=window)
        return 1
