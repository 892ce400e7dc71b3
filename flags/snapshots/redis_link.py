"""This process's link to Redis: revision announcements on a pub/sub channel and the snapshot
cache, with an outage flag so that a Redis that is down costs a fraction of a second once, not
a timeout per request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "flagstaff:revisions"
# Redis sits on the request path (cache reads) and the write path (announcements): a dead or
# unreachable server must cost a fraction of a second, never a hang.
REDIS_TIMEOUT_SECONDS = 0.5


class RedisLink:
    """This process's Redis for announcements and the snapshot cache, with an outage flag.

    While the flag is up, cache reads are skipped (the listener thread keeps retrying and
    lowers it); one warning is logged when Redis becomes unreachable, one line when it is back.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = make_redis_client(url)
        self.channel = revision_channel(url)
        self._down = False
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._down

    def mark_down(self, exc: BaseException) -> None:
        with self._lock:
            was_down, self._down = self._down, True
        if not was_down:
            logger.warning(
                "Redis is unreachable (%s): snapshot invalidation falls back to revision checks "
                "every %s s until it is back",
                exc,
                settings.FLAGSTAFF_REVISION_CHECK_SECONDS,
            )

    def mark_up(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            logger.info("Redis is reachable again: snapshot invalidation follows announcements")

    def publish(self, payload: str) -> None:
        try:
            self.client.publish(self.channel, payload)
        except (redis.RedisError, OSError) as exc:
            self.mark_down(exc)

    def get(self, key: str) -> bytes | None:
        if self._down:
            return None
        try:
            value = self.client.get(key)
        except (redis.RedisError, OSError) as exc:
            self.mark_down(exc)
            return None
        return value if isinstance(value, bytes) else None

    def set_many(self, values: Mapping[str, bytes | str], *, seconds: int) -> None:
        if self._down:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key, value in values.items():
                    pipe.set(key, value, ex=seconds)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self.mark_down(exc)


def revision_channel(url: str) -> str:
    """The announcements' channel for the Redis database of `url`."""
    # Pub/sub ignores database numbers: without the number, deployments sharing a Redis
    # server on different databases would hear each other's revisions.
    db = redis.connection.parse_url(url).get("db", 0)
    return f"{CHANNEL_PREFIX}:{db}"


def make_redis_client(url: str, **options: Any) -> redis.Redis:
    # No silent retries: a failure must surface, so that the outage is seen and handled.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


_links: dict[str, RedisLink] = {}
_links_lock = threading.Lock()


def redis_link(url: str | None = None) -> RedisLink | None:
    """The process's link to `url` (default: settings.REDIS_URL); None without Redis."""
    url = settings.REDIS_URL if url is None else url
    if not url:
        return None
    with _links_lock:
        link = _links.get(url)
        if link is None:
            link = _links[url] = RedisLink(url)
        return link
