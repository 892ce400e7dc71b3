"""The stream process's fan-out (flags.serving.fanout): one encoding per revision for every
stream, slow consumers dropped without holding up the others."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from flags.serving.fanout import (
    KEEPALIVE_SLOTS,
    MAX_OPENINGS,
    MAX_PENDING_EVENTS,
    Feed,
    Hub,
    Message,
    OpeningLimit,
    Receive,
    Scope,
    Send,
    Subscriber,
)
from flags.serving.stream import StreamOpening
from flags.snapshots import Snapshot, SnapshotStore

FLAG = {
    "key": "support-chat",
    "enabled": True,
    "version": 1,
    "stickiness": "targetingKey",
    "surface": "chat",
    "rules": [],
    "rollout": None,
    "experiment": None,
    "versions": {"1": "h1"},
}


def snapshot(revision: int, *, max_tokens: int = 100) -> Snapshot:
    document: dict[str, Any] = {
        "format": 1,
        "environment": "production",
        "revision": revision,
        "generated_at": "2026-12-05T00:00:00Z",
        "segments": {},
        "flags": {"support-chat": FLAG},
        "contents": {"h1": {"model": "claude-sonnet-5-5", "max_tokens": max_tokens}},
    }
    return Snapshot.from_document(document, fingerprint="1.1")


def subscribers(count: int, format: str = "changes") -> list[Subscriber]:
    return [Subscriber(format, ends_at=float("inf"), drop=asyncio.Event()) for _ in range(count)]


def test_feed__new_revision__one_encoded_event_queued_to_every_stream() -> None:
    async def run() -> list[Subscriber]:
        feed = Feed("production", snapshot(7))
        feed.subscribers.update(subscribers(50))
        feed.advance(snapshot(8))
        return list(feed.subscribers)

    streams = asyncio.run(run())

    chunks = [stream.pending[0][0] for stream in streams]
    assert all(chunk is chunks[0] for chunk in chunks)
    assert chunks[0].startswith(b"event: changes\nid: 8\n")
    assert {stream.pending[0][1] for stream in streams} == {8}


def test_feed__ack_report__counts_streams_by_the_revision_written_to_them() -> None:
    async def run() -> dict[str, object]:
        feed = Feed("production", snapshot(8))
        streams = subscribers(4)
        feed.subscribers.update(streams)
        for stream, revision in zip(streams, [8, 7, 7], strict=False):
            feed.written(stream, revision)
        feed.written(streams[1], 8)  # a later revision written to a stream: counted once
        feed.remove(streams[2])
        return json.loads(feed.ack_report())

    report = asyncio.run(run())

    assert (report["connected"], report["revisions"]) == (3, {"8": 2})


def test_feed__a_stream_whose_queue_is_full__dropped_and_the_others_served() -> None:
    async def run() -> tuple[Subscriber, list[Subscriber]]:
        feed = Feed("production", snapshot(7))
        slow, *others = subscribers(3)
        for _ in range(MAX_PENDING_EVENTS):
            slow.offer(b": keep-alive\n\n")
        feed.subscribers.update([slow, *others])
        feed.advance(snapshot(8))
        return slow, others

    slow, others = asyncio.run(run())

    assert slow.closed
    assert slow.drop is not None
    assert slow.drop.is_set()
    assert not slow.pending
    assert all(len(stream.pending) == 1 and not stream.closed for stream in others)


def test_feed__older_format_streams__revision_and_ofrep_events() -> None:
    async def run() -> tuple[bytes, bytes]:
        feed = Feed("production", snapshot(7))
        (legacy,), (ofrep,) = subscribers(1, "flagstaff"), subscribers(1, "ofrep")
        feed.subscribers.update([legacy, ofrep])
        feed.advance(snapshot(8))
        return legacy.pending[0][0], ofrep.pending[0][0]

    legacy, ofrep = asyncio.run(run())

    assert legacy == b'event: revision\nid: 8\ndata: {"environment":"production","revision":8}\n\n'
    assert ofrep == b'event: message\nid: 8\ndata: {"type": "refetchEvaluation"}\n\n'


def test_feed__same_or_older_revision__nothing_sent() -> None:
    async def run() -> Subscriber:
        feed = Feed("production", snapshot(8))
        (stream,) = subscribers(1)
        feed.subscribers.add(stream)
        feed.advance(snapshot(8, max_tokens=5))
        feed.advance(snapshot(7))
        return stream

    assert not asyncio.run(run()).pending


class RefusingStore:
    """The two calls of the snapshot store that the hub's refresh makes, with a database that
    refuses `refusals` connections: the store then keeps serving the snapshot it has while the
    announced revision stays pending, as flags.snapshots.SnapshotStore does."""

    def __init__(self, held: Snapshot, announced: Snapshot, refusals: int) -> None:
        self.held, self.announced, self.refusals = held, announced, refusals
        self.calls = 0

    def get(self, environment: str) -> Snapshot:
        self.calls += 1
        if self.refusals:
            self.refusals -= 1
            return self.held
        self.held = self.announced
        return self.held

    def announced_after(self, environment: str, revision: int) -> bool:
        return self.announced.revision > revision


def test_hub__announced_revision_not_loadable_yet__retried_soon_until_every_stream_has_it() -> None:
    store = RefusingStore(snapshot(7), snapshot(8, max_tokens=200), refusals=3)

    async def run() -> Feed:
        hub = Hub()
        hub.store = cast(SnapshotStore, store)
        feed = hub.feeds["production"] = Feed("production", snapshot(7))
        feed.subscribers.update(subscribers(3))
        hub.refresh(feed)
        assert feed.refreshing is not None
        # Backing off from REFRESH_RETRY_SECONDS: well within a second, not a recheck interval.
        await asyncio.wait_for(feed.refreshing, timeout=2.0)
        return feed

    feed = asyncio.run(run())

    assert (feed.snapshot.revision, store.calls) == (8, 4)
    assert all(stream.pending[0][0].startswith(b"event: changes\nid: 8\n") for stream in feed.subscribers)


def test_hub__store_has_the_announced_revision__one_load_no_retry() -> None:
    store = RefusingStore(snapshot(7), snapshot(8), refusals=0)

    async def run() -> Feed:
        hub = Hub()
        hub.store = cast(SnapshotStore, store)
        feed = hub.feeds["production"] = Feed("production", snapshot(7))
        hub.refresh(feed)
        assert feed.refreshing is not None
        await asyncio.wait_for(feed.refreshing, timeout=2.0)
        return feed

    assert (asyncio.run(run()).snapshot.revision, store.calls) == (8, 1)


def test_opening_limit__past_max_openings_being_checked__503_stream_capacity_at_once() -> None:
    async def run() -> tuple[list[Message], list[Message], int]:
        release = asyncio.Event()

        async def checks(scope: Scope, receive: Receive, send: Send) -> None:
            await release.wait()  # the checks, waiting for the request thread
            await send({"type": "http.response.start", "status": 200, "headers": []})

        limit = OpeningLimit(checks)
        scope = {"type": "http", "path": "/api/v1/environments/production/stream"}

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def request() -> list[Message]:
            sent: list[Message] = []

            async def send(message: Message) -> None:
                sent.append(message)

            await limit(scope, receive, send)
            return sent

        waiting = [asyncio.create_task(request()) for _ in range(MAX_OPENINGS)]
        await asyncio.sleep(0)
        refused = await request()
        release.set()
        answered = await asyncio.gather(*waiting)
        after = await request()
        return refused, after, sum(messages[0]["status"] == 200 for messages in answered)

    refused, after, answered = asyncio.run(run())

    start, body = refused
    assert start["status"] == 503
    assert (b"retry-after", b"2") in start["headers"]
    assert json.loads(body["body"])["code"] == "stream_capacity"
    assert answered == MAX_OPENINGS
    assert after[0]["status"] == 200


def test_hub__keep_alives__spread_over_the_interval_one_per_stream() -> None:
    async def run() -> tuple[list[int], list[int]]:
        hub = Hub()
        hub.acks = None
        feed = hub.feeds["production"] = Feed("production", snapshot(7))
        streams = [
            Subscriber("changes", float("inf"), None, keepalive_slot=index % KEEPALIVE_SLOTS)
            for index in range(4 * KEEPALIVE_SLOTS)
        ]
        feed.subscribers.update(streams)
        per_slot = []
        for slot in range(KEEPALIVE_SLOTS):
            queued = sum(len(stream.pending) for stream in streams)
            hub.keep_alive(slot, now=0.0)
            per_slot.append(sum(len(stream.pending) for stream in streams) - queued)
        return per_slot, [len(stream.pending) for stream in streams]

    per_slot, per_stream = asyncio.run(run())

    # A slot's streams only, and over the interval every stream exactly once.
    assert per_slot == [4] * KEEPALIVE_SLOTS
    assert per_stream == [1] * (4 * KEEPALIVE_SLOTS)


def test_hub__joining_streams__keep_alive_slots_given_in_turn() -> None:
    opening = StreamOpening(environment="production", snapshot=snapshot(7), last_event_id=7, format="changes")

    async def run() -> list[int]:
        hub = Hub()
        hub.acks = None
        slots = []
        for _ in range(KEEPALIVE_SLOTS + 1):
            _, subscriber, _ = await hub.join(opening, None)
            slots.append(subscriber.keepalive_slot)
        return slots

    assert asyncio.run(run()) == [*range(KEEPALIVE_SLOTS), 0]


def test_hub__stream_whose_time_is_up__ended_whatever_its_slot() -> None:
    async def run() -> Subscriber:
        hub = Hub()
        hub.acks = None
        feed = hub.feeds["production"] = Feed("production", snapshot(7))
        stream = Subscriber("changes", ends_at=10.0, drop=None, keepalive_slot=3)
        feed.subscribers.add(stream)
        hub.keep_alive(0, now=11.0)
        return stream

    stream = asyncio.run(run())

    assert stream.closed
    assert not stream.pending
