"""The stream process: change streams on an event loop (docs/serving.md, "The stream process").

`controlplane.asgi` serves `GET /api/v1/environments/{env}/stream` with `stream`, an async
Django view, under uvicorn. One `Hub` per process holds every stream:

- one Redis subscription to the revision announcements (`redis.asyncio`), resubscribing with
  backoff; while it is down, and as a safety net while it is up, a revision check per
  environment (the snapshot store's, in the hub's one worker thread, which is the only one
  that compiles snapshots);
- per environment a `Feed`: the current snapshot, and each event of its last change encoded
  once (`revision`, OFREP's `refetchEvaluation`, and `changes` from the previous revision:
  flags.serving.changes), appended to every stream of the environment in one pass;
- per stream a `Subscriber`: a short queue its own task writes to the socket. A stream whose
  queue fills (its client does not read, the socket buffer is full) is dropped: its
  connection is closed and the client reconnects; nothing waits for it;
- with Redis, an `AckReporter`: per environment the number of streams and up to which revision
  each has been written to its connection, for rollback rehearsals (flags.serving.acks).

Authentication, tickets, permissions and `Last-Event-ID` are the WSGI stream's
(flags.serving.stream.StreamView, run in a thread before the stream starts); keep-alives and
the streams' ends are one timer for the process, not one per stream, which sends the
keep-alives of one slot of the streams at a time, spread over the keep-alive interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from django.http import HttpResponseBase, StreamingHttpResponse

from flags.serving.acks import report_document, report_key
from flags.serving.changes import (
    KEEPALIVE,
    changes_event,
    ofrep_event,
    resync_event,
    retry_hint,
    revision_event,
)
from flags.serving.stream import STREAM_RETRY_MILLISECONDS, StreamCapacity, StreamOpening, StreamView
from flags.snapshots import Snapshot, SnapshotUnavailable, UnknownEnvironment, get_store
from flags.snapshots.redis_link import REDIS_TIMEOUT_SECONDS, revision_channel

logger = logging.getLogger(__name__)

# Events a stream may have waiting for its socket; past this its client is not reading.
MAX_PENDING_EVENTS = 32
# A resync asks the environment's clients to fetch the snapshot spread over this many per second.
RESYNC_FETCHES_PER_SECOND = 1000
# Patches kept per environment from earlier revisions (clients reconnecting from them).
PATCHES_KEPT = 8
LISTENER_MAX_BACKOFF_SECONDS = 5.0
# First wait before loading an announced revision again after the store could not (doubling).
REFRESH_RETRY_SECONDS = 0.05
DROP_SCOPE_KEY = "flagstaff.drop"
# Stream requests being checked at once (OpeningLimit): about a quarter of a second of checks.
MAX_OPENINGS = 256
# The streams' keep-alives go out in this many slots spread over each keep-alive interval (a
# stream's slot is given in turn as it joins), not all at once: a keep-alive is a write and a
# wake-up of its client, and 5,000 of them at once took as long as a change's events, which a
# change arriving then waited behind (bench/bench_propagation.py).
KEEPALIVE_SLOTS = 16

# The ASGI types as Django's handler declares them.
Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Subscriber:
    """One open stream: its format, its waiting events, the moment it ends, and the revision
    its client holds (the last one written to the connection; None before the first event)."""

    __slots__ = ("closed", "drop", "ends_at", "format", "keepalive_slot", "pending", "revision", "wake")

    def __init__(
        self, format: str, ends_at: float, drop: asyncio.Event | None, *, keepalive_slot: int = 0
    ) -> None:
        self.format = format
        self.ends_at = ends_at
        self.drop = drop
        # When in each keep-alive interval this stream gets its keep-alive (KEEPALIVE_SLOTS).
        self.keepalive_slot = keepalive_slot
        self.pending: deque[tuple[bytes, int | None]] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.revision: int | None = None

    def offer(self, chunk: bytes, revision: int | None = None) -> bool:
        """Queue `chunk` (carrying `revision`, or None for a keep-alive); False (and the stream
        dropped) when the client is not reading."""
        if self.closed:
            return True
        if len(self.pending) >= MAX_PENDING_EVENTS:
            self.pending.clear()
            self.end()
            if self.drop is not None:
                self.drop.set()
            return False
        self.pending.append((chunk, revision))
        self.wake.set()
        return True

    def end(self) -> None:
        self.closed = True
        self.wake.set()


@dataclass(eq=False)
class Feed:
    """One environment's streams in this process and its current snapshot."""

    environment: str
    snapshot: Snapshot
    subscribers: set[Subscriber] = field(default_factory=set)
    patches: dict[int, bytes | None] = field(default_factory=dict)
    """`changes` events to the current revision by revision of origin (None: none possible)."""
    refreshing: asyncio.Task[None] | None = None
    again: bool = False
    held: Counter[int] = field(default_factory=Counter)
    """Streams by the revision last written to them, kept as they change: the acknowledgement
    report is rewritten after every write, and counting every stream each time made a fleet's
    arrival cost the square of its size."""

    def ack_report(self) -> str:
        """This feed's line of the process's acknowledgement report (flags.serving.acks)."""
        return report_document(len(self.subscribers), self.held, time.time())

    def written(self, subscriber: Subscriber, revision: int) -> None:
        """`revision` has been written to `subscriber`'s connection."""
        self._uncount(subscriber)
        subscriber.revision = revision
        self.held[revision] += 1

    def remove(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self._uncount(subscriber)
        subscriber.revision = None

    def _uncount(self, subscriber: Subscriber) -> None:
        if subscriber.revision is not None:
            self.held[subscriber.revision] -= 1
            if not self.held[subscriber.revision]:
                del self.held[subscriber.revision]

    @property
    def resync_spread(self) -> float:
        return max(1.0, len(self.subscribers) / RESYNC_FETCHES_PER_SECOND)

    def advance(self, snapshot: Snapshot) -> None:
        """Make `snapshot` current and send its events to every stream, each encoded once."""
        current = self.snapshot
        if snapshot.fingerprint == current.fingerprint and snapshot.revision <= current.revision:
            return
        revision = snapshot.revision
        patch = None
        if snapshot.fingerprint == current.fingerprint:
            patch = changes_event(current.document, snapshot.document)
        self.snapshot = snapshot
        self.patches = {current.revision: patch}
        events = {
            "flagstaff": revision_event(self.environment, revision),
            "ofrep": ofrep_event(revision),
            "changes": patch or resync_event(self.environment, revision, spread=self.resync_spread),
        }
        dropped = sum(
            not subscriber.offer(events[subscriber.format], revision) for subscriber in self.subscribers
        )
        logger.info(
            "revision sent to streams",
            extra={"environment": self.environment, "revision": revision, "streams": len(self.subscribers)},
        )
        if dropped:
            logger.warning(
                "dropped %s change streams whose clients were not reading",
                dropped,
                extra={"environment": self.environment},
            )


class AckReporter:
    """Reports, per environment, this process's streams and the revisions written to them
    (flags.serving.acks): at most one write in flight, coalescing every change meanwhile."""

    def __init__(self, url: str, ttl_seconds: float) -> None:
        self.url = url
        self.ttl = max(1, math.ceil(ttl_seconds))
        self.process = uuid.uuid4().hex[:12]
        self.dirty: dict[str, Feed] = {}
        self._flushing: asyncio.Task[None] | None = None
        self._client: redis.asyncio.Redis | None = None

    def changed(self, feed: Feed) -> None:
        self.dirty[feed.environment] = feed
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self.dirty:
            feeds, self.dirty = self.dirty, {}
            try:
                if self._client is None:
                    self._client = redis.asyncio.Redis.from_url(
                        self.url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
                    )
                async with self._client.pipeline(transaction=False) as pipe:
                    for environment, feed in feeds.items():
                        pipe.set(report_key(environment, self.process), feed.ack_report(), ex=self.ttl)
                    await pipe.execute()
            except (redis.RedisError, OSError) as exc:
                # Rehearsals then see fewer streams reached; serving the streams goes on.
                logger.warning("could not report stream acknowledgements: %s", exc)
                return


class Hub:
    """Every change stream of this process; see the module docstring."""

    def __init__(self) -> None:
        self.store = get_store()
        self.capacity = settings.FLAGSTAFF_STREAM_PROCESS_CAPACITY
        self.keepalive = settings.FLAGSTAFF_STREAM_KEEPALIVE_SECONDS
        self.max_seconds = settings.FLAGSTAFF_STREAM_MAX_SECONDS
        self.feeds: dict[str, Feed] = {}
        self.listening = False
        self._held = 0
        self._held_lock = threading.Lock()
        # One thread reads the database and the snapshot cache: snapshots are compiled one at a
        # time, and never on the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flagstaff-stream-hub")
        self._older: dict[tuple[str, int, int], asyncio.Future[bytes | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._slots = itertools.cycle(range(KEEPALIVE_SLOTS))
        # Reports outlive a few keep-alives, which refresh them: a dead process stops counting.
        self.acks = (
            AckReporter(self.store.redis_url, 3 * self.keepalive + 1) if self.store.redis_url else None
        )

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._tick())]
        if self.store.redis_url:
            self._tasks.append(asyncio.create_task(self._listen(self.store.redis_url)))
        self._tasks.append(asyncio.create_task(self._recheck()))

    # Places (taken in the request's thread, given back on the loop)

    @property
    def open_streams(self) -> int:
        return self._held

    def hold(self) -> None:
        """Take a stream place; raises StreamCapacity when the process holds all it may."""
        with self._held_lock:
            if self.capacity and self._held >= self.capacity:
                raise StreamCapacity(
                    f"This stream process holds {self.capacity} change streams, its limit; retry "
                    "shortly (another stream process may take it), or poll the snapshot meanwhile."
                )
            self._held += 1

    def release(self) -> None:
        with self._held_lock:
            self._held -= 1

    # Streams

    async def join(
        self, opening: StreamOpening, drop: asyncio.Event | None
    ) -> tuple[Feed, Subscriber, bytes]:
        """Register a stream; returns its feed, its subscriber and its first bytes."""
        feed = self.feeds.get(opening.environment)
        if feed is None:
            feed = self.feeds[opening.environment] = Feed(opening.environment, opening.snapshot)
        else:
            feed.advance(opening.snapshot)
        # Spread over the last tenth of the lifetime: streams opened together do not all end,
        # and reconnect, together.
        ends_at = time.monotonic() + self.max_seconds * random.uniform(0.9, 1.0)
        subscriber = Subscriber(opening.format, ends_at, drop, keepalive_slot=next(self._slots))
        # Registered first: a change that arrives while the first event is made is queued
        # behind it.
        feed.subscribers.add(subscriber)
        try:
            first = retry_hint(STREAM_RETRY_MILLISECONDS) + await self._first_event(feed, opening)
        except BaseException:
            feed.remove(subscriber)
            raise
        return feed, subscriber, first

    def leave(self, feed: Feed, subscriber: Subscriber) -> None:
        if subscriber in feed.subscribers:
            feed.remove(subscriber)
            self.release()
            self._delivered(feed)

    def _delivered(self, feed: Feed) -> None:
        if self.acks is not None:
            self.acks.changed(feed)

    async def _first_event(self, feed: Feed, opening: StreamOpening) -> bytes:
        """What a stream sends on connect, given the client's Last-Event-ID."""
        revision, last = feed.snapshot.revision, opening.last_event_id
        if opening.format == "flagstaff":
            return b"" if last == revision else revision_event(feed.environment, revision)
        if opening.format == "ofrep":
            return b"" if last is None or last == revision else ofrep_event(revision)
        if last == revision:
            return b""
        if last is not None and 0 <= last < revision:
            patch = await self._patch_from(feed, last)
            if patch is not None:
                return patch
        # Garbage, from the future, or too old for a patch: a full resync.
        return resync_event(feed.environment, revision, spread=feed.resync_spread)

    async def _patch_from(self, feed: Feed, origin: int) -> bytes | None:
        """The `changes` event from revision `origin` to the current one, computed once for
        every client reconnecting from it (the earlier document from the snapshot cache)."""
        if origin in feed.patches:
            return feed.patches[origin]
        snapshot = feed.snapshot
        key = (feed.environment, origin, snapshot.revision)
        pending = self._older.get(key)
        if pending is None:
            pending = self._older[key] = asyncio.get_running_loop().create_future()
            try:
                older = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.store.cached_snapshot, feed.environment, origin, snapshot.fingerprint
                )
                patch = None if older is None else changes_event(older.document, snapshot.document)
                pending.set_result(patch)
            except Exception as exc:  # the cache unreadable: a resync instead, never a failed stream
                logger.warning("could not read an earlier snapshot: %s", exc, extra={"environment": key[0]})
                pending.set_result(None)
            finally:
                del self._older[key]
            if feed.snapshot is snapshot:
                feed.patches[origin] = pending.result()
                while len(feed.patches) > PATCHES_KEPT:
                    del feed.patches[next(iter(feed.patches))]
        return await pending

    async def events(self, feed: Feed, subscriber: Subscriber, first: bytes) -> AsyncIterator[bytes]:
        """The stream's body. Ends when the subscriber is ended (its time is up, it was dropped,
        its environment is gone) or when the client leaves (the server cancels it)."""
        # The generator resumes after a `yield` once the server has handed the chunk to the
        # connection (Django's ASGI handler asks for the next chunk after sending one).
        try:
            revision = feed.snapshot.revision
            yield first
            feed.written(subscriber, revision)
            self._delivered(feed)
            while True:
                if subscriber.pending:
                    chunk, revision_sent = subscriber.pending.popleft()
                    yield chunk
                    if revision_sent is not None:
                        feed.written(subscriber, revision_sent)
                        self._delivered(feed)
                elif subscriber.closed:
                    return
                else:
                    subscriber.wake.clear()
                    await subscriber.wake.wait()
        finally:
            self.leave(feed, subscriber)

    # Learning about revisions

    def refresh(self, feed: Feed) -> None:
        """Bring the feed to the store's current snapshot, in the hub's thread; one at a time."""
        if feed.refreshing is not None and not feed.refreshing.done():
            feed.again = True
            return
        feed.refreshing = asyncio.create_task(self._refresh(feed))

    async def _refresh(self, feed: Feed) -> None:
        loop = asyncio.get_running_loop()
        delay = REFRESH_RETRY_SECONDS
        while True:
            feed.again = False
            try:
                snapshot = await loop.run_in_executor(self._executor, self.store.get, feed.environment)
            except UnknownEnvironment:
                for subscriber in feed.subscribers:
                    subscriber.end()
                return
            except SnapshotUnavailable:
                pass  # the database and the cache are down: retried below if a change is waiting
            else:
                feed.advance(snapshot)
            if feed.again:
                continue
            if not self.store.announced_after(feed.environment, feed.snapshot.revision):
                return
            # An announced revision the store could not load (the database refused a
            # connection, say): again soon, not at the next recheck, which would leave every
            # stream of the environment behind for up to FLAGSTAFF_REVISION_RECHECK_SECONDS.
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTENER_MAX_BACKOFF_SECONDS)

    def on_announcement(self, data: object) -> None:
        try:
            payload = json.loads(data)  # type: ignore[arg-type]
            environment, revision = payload["environment"], int(payload["revision"])
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("ignored a malformed revision announcement", extra={"error": str(exc)})
            return
        feed = self.feeds.get(environment) if isinstance(environment, str) else None
        if feed is None or revision <= feed.snapshot.revision:
            return
        self.store.note_revision(environment, revision)
        self.refresh(feed)

    def recheck_all(self) -> None:
        """Ask the database for the revision of every environment with streams."""
        self.store.expire_checks()
        for feed in self.feeds.values():
            if feed.subscribers:
                self.refresh(feed)

    async def _listen(self, url: str) -> None:
        """Follow the announcements with one subscription; resubscribe with backoff."""
        delay = 0.1
        while True:
            client = redis.asyncio.Redis.from_url(
                url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, health_check_interval=10
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(revision_channel(url))
                self.listening = True
                logger.info("stream process subscribed to revision announcements")
                # Whatever was announced while nobody listened: one check per environment.
                self.recheck_all()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.on_announcement(message.get("data"))
            except (redis.RedisError, OSError) as exc:
                if self.listening:
                    logger.warning(
                        "Redis is unreachable (%s): streams follow revision checks every %s s until it is"
                        " back",
                        exc,
                        self.store.check_seconds,
                    )
                self.listening = False
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTENER_MAX_BACKOFF_SECONDS)

    async def _recheck(self) -> None:
        """The revision checks: the only source without Redis, a safety net with it (pub/sub
        delivers at most once)."""
        while True:
            interval = self.store.recheck_seconds if self.listening else self.store.check_seconds
            await asyncio.sleep(max(interval, 0.05))
            for feed in self.feeds.values():
                if feed.subscribers:
                    self.refresh(feed)

    async def _tick(self) -> None:
        """Keep-alives for every stream, and the end of those whose time is up: one timer, which
        serves one keep-alive slot at a time, KEEPALIVE_SLOTS of them per keep-alive interval."""
        for slot in itertools.cycle(range(KEEPALIVE_SLOTS)):
            await asyncio.sleep(self.keepalive / KEEPALIVE_SLOTS)
            self.keep_alive(slot, time.monotonic())

    def keep_alive(self, slot: int, now: float) -> None:
        """A keep-alive to every stream of `slot`; the end of every stream whose time is up.
        The acknowledgement reports are refreshed once per interval (slot 0)."""
        for feed in self.feeds.values():
            if slot == 0 and self.acks is not None and feed.subscribers:
                self.acks.changed(feed)
            for subscriber in list(feed.subscribers):
                if now >= subscriber.ends_at:
                    subscriber.end()
                elif subscriber.keepalive_slot == slot:
                    subscriber.offer(KEEPALIVE)


_hub: Hub | None = None


def get_hub() -> Hub:
    """The process's hub, started on the running loop at first use (DroppableStreams makes
    that first use on the loop, before any request's thread needs it)."""
    global _hub
    if _hub is None:
        _hub = Hub()
        _hub.start()
    return _hub


class StreamOpenView(StreamView):
    """The stream in the stream process: the WSGI stream's checks (with the middleware, in one
    trip to the request thread: controlplane.asgi.StreamHandler), a stream place taken, then a
    body that joins the hub on the event loop. Any refusal is DRF's answer, as the WSGI stream
    gives it."""

    def stream_response(self, opening: StreamOpening) -> HttpResponseBase:
        hub = get_hub()
        hub.hold()
        drop = getattr(self.request, "scope", {}).get(DROP_SCOPE_KEY)
        response = StreamingHttpResponse(_StreamBody(hub, opening, drop), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # no proxy buffering of the events
        return response


class _StreamBody:
    """A granted stream's body: it joins the hub when the server starts sending it (on the
    event loop), and gives its place back if the server closes it before that."""

    def __init__(self, hub: Hub, opening: StreamOpening, drop: asyncio.Event | None) -> None:
        self.hub, self.opening, self.drop = hub, opening, drop
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        try:
            feed, subscriber, first = await self.hub.join(self.opening, self.drop)
        except BaseException:
            self.hub.release()
            raise
        async for chunk in self.hub.events(feed, subscriber, first):
            yield chunk

    def close(self) -> None:
        if not self.started:
            self.started = True
            self.hub.release()


# `GET /api/v1/environments/{env}/stream` in the stream process: a synchronous view, so that
# the middleware and the checks run in one trip to the request thread.
stream = StreamOpenView.as_view()


class OpeningLimit:
    """ASGI wrapper: at most MAX_OPENINGS stream requests between arrival and answer; past it
    `503 stream_capacity` with `Retry-After` at once, on the loop. The checks run one at a
    time in the request thread, and a queue without end is a collapse: clients time out while
    they wait, retry, and the thread spends itself on requests nobody waits for any more."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application
        self.openings = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).endswith("/stream"):
            await self.application(scope, receive, send)
            return
        if self.openings >= MAX_OPENINGS:
            await _refuse_opening(send)
            return
        self.openings += 1
        answered = False

        async def send_counted(message: Message) -> None:
            nonlocal answered
            if not answered and message["type"] == "http.response.start":
                answered = True
                self.openings -= 1
            await send(message)

        try:
            await self.application(scope, receive, send_counted)
        finally:
            if not answered:
                self.openings -= 1


async def _refuse_opening(send: Send) -> None:
    refusal = StreamCapacity(
        "This stream process is opening as many streams as it may at once; retry shortly."
    )
    body = json.dumps(refusal.as_dict()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(STREAM_RETRY_MILLISECONDS // 1000).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class DroppableStreams:
    """ASGI wrapper: a stream the hub drops looks to Django like a client that left (the
    request is cancelled and the server closes the connection), without waiting for the
    socket that is not being read."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.application(scope, receive, send)
            return
        get_hub()  # started here, on the loop: the request's thread only takes a place in it
        drop = asyncio.Event()
        scope[DROP_SCOPE_KEY] = drop

        async def receive_or_drop() -> Message:
            if drop.is_set():
                return {"type": "http.disconnect"}
            receiving = asyncio.ensure_future(receive())
            dropping = asyncio.ensure_future(drop.wait())
            try:
                await asyncio.wait({receiving, dropping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                dropping.cancel()
                if not receiving.done():
                    receiving.cancel()
            if receiving.done() and not receiving.cancelled():
                return receiving.result()
            return {"type": "http.disconnect"}

        await self.application(scope, receive_or_drop, send)
