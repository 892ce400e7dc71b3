"""The client and pushed changes (`changes` and `resync` events) on the fake control plane's
stream: applied without a request when they apply, one snapshot fetch when they do not."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flagstaff import Flagstaff
from tests.client.fake_controlplane import FakeControlPlane, MakeClient, content
from tests.client.test_client import wait_until

SNAPSHOT = "/snapshot"


def streaming(controlplane: FakeControlPlane, client: Flagstaff) -> None:
    assert controlplane.wait_for(lambda: bool(controlplane.seen("/stream")))
    assert client.revision is not None
    time.sleep(0.2)  # the stream's first lines are read


def changes(controlplane: FakeControlPlane, *, origin: int, max_tokens: int, **extra: Any) -> dict[str, Any]:
    """A changes event from `origin` that serves v2 with `max_tokens` (its content sent)."""
    entry = {**controlplane.flags["support-chat"], "version": 2, "versions": {"2": "sha256:pushed"}}
    return {
        "environment": controlplane.environment,
        "from": origin,
        "revision": origin + 1,
        "generated_at": "2026-12-05T00:00:00Z",
        "flags": {"support-chat": entry},
        "removed": [],
        "segments": {},
        "removed_segments": [],
        "contents": {"sha256:pushed": content(2, max_tokens=max_tokens)},
        **extra,
    }


def test_client__changes_event_from_the_revision_held__applied_without_a_fetch(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat")
    client = make_client(poll_interval=30.0)
    streaming(controlplane, client)
    held, fetches = client.revision, len(controlplane.seen(SNAPSHOT))
    assert held is not None

    controlplane.push("changes", changes(controlplane, origin=held, max_tokens=777), held + 1)

    assert client.wait_for_revision(held + 1, 5)
    resolved = client.resolve("support-chat", {"targetingKey": "u-1"})
    assert resolved.content is not None
    assert (resolved.version, resolved.revision, resolved.content["max_tokens"]) == (2, held + 1, 777)
    assert client.revision_received_at is not None
    assert len(controlplane.seen(SNAPSHOT)) == fetches
    assert client.snapshot_fetches == {"start": 1}


def test_client__changes_event_for_one_flag__other_flags_answer_with_the_new_revision(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    # The flags a change leaves alone are shared with the next snapshot, answers cached included:
    # an answer made for the earlier revision must not be served for the later one.
    controlplane.set_flag("support-chat")
    controlplane.set_flag("other-flag")
    client = make_client(poll_interval=30.0)
    streaming(controlplane, client)
    held = client.revision
    assert held is not None
    assert client.resolve("other-flag", {"targetingKey": "u-1"}).revision == held

    controlplane.push("changes", changes(controlplane, origin=held, max_tokens=779), held + 1)

    assert client.wait_for_revision(held + 1, 5)
    snapshot = client.snapshot
    assert snapshot is not None
    resolved = client.resolve("other-flag", {"targetingKey": "u-1"})
    assert (resolved.revision, resolved.version, resolved.reason) == (held + 1, 1, "STATIC")
    assert client.resolve("support-chat", {"targetingKey": "u-1"}).revision == held + 1
    assert client.snapshot_fetches == {"start": 1}


def test_client__changes_event_longer_than_64_kib__applied_without_a_fetch(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    # One `data:` line carries every content sent: a large system prompt makes it long, and the
    # line must arrive whole however many reads it takes.
    controlplane.set_flag("support-chat")
    client = make_client(poll_interval=30.0)
    streaming(controlplane, client)
    held = client.revision
    assert held is not None
    event = changes(controlplane, origin=held, max_tokens=778)
    event["contents"]["sha256:pushed"]["system"] = "é" * 200_000

    controlplane.push("changes", event, held + 1)

    assert client.wait_for_revision(held + 1, 5)
    resolved = client.resolve("support-chat", {"targetingKey": "u-1"})
    assert resolved.content is not None
    assert (resolved.content["max_tokens"], len(resolved.content["system"])) == (778, 200_000)
    assert client.snapshot_fetches == {"start": 1}


@pytest.mark.parametrize(
    ("event", "build", "reason"),
    [
        ("changes", lambda fake, held: changes(fake, origin=held - 1, max_tokens=5), "gap"),
        (
            "changes",
            lambda fake, held: {**changes(fake, origin=held, max_tokens=5), "contents": {}},
            "unknown_hash",
        ),
        ("changes", lambda fake, held: "{not json", "malformed"),
        (
            "resync",
            lambda fake, held: {"environment": fake.environment, "revision": held + 1, "spread": 0.2},
            "resync",
        ),
    ],
    ids=["gap", "unknown-hash", "malformed", "resync"],
)
def test_client__changes_it_cannot_apply_or_a_resync__one_snapshot_fetch_counted_by_reason(
    controlplane: FakeControlPlane, make_client: MakeClient, event: str, build: Any, reason: str
) -> None:
    controlplane.set_flag("support-chat")
    client = make_client(poll_interval=30.0)
    streaming(controlplane, client)
    held, fetches = client.revision, len(controlplane.seen(SNAPSHOT))
    assert held is not None
    controlplane.revision_events = False  # the new revision reaches the stream only as pushed
    controlplane.set_flag("support-chat", version=3)

    controlplane.push(event, build(controlplane, held), held + 1)

    assert client.wait_for_revision(held + 1, 5)
    time.sleep(0.5)
    assert len(controlplane.seen(SNAPSHOT)) == fetches + 1
    assert client.resolve("support-chat", {"targetingKey": "u-1"}).version == 3
    assert client.snapshot_fetches == {"start": 1, reason: 1}


def test_client__stream_refused_once__reconnects_without_a_snapshot_fetch(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat")
    controlplane.stream_status = 503
    client = make_client(poll_interval=30.0)
    assert controlplane.wait_for(lambda: len(controlplane.seen("/stream")) == 1)

    controlplane.stream_status = 200

    # The next stream resumes from the revision held: nothing to fetch.
    assert controlplane.wait_for(lambda: len(controlplane.seen("/stream")) == 2)
    assert wait_until(lambda: client.streaming)
    assert client.snapshot_fetches == {"start": 1}
    assert client.stream_endings == {"refused": 1}


def test_client__stream_refused_again__polls_once_meanwhile(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    controlplane.set_flag("support-chat")
    controlplane.stream_status = 503
    client = make_client(poll_interval=30.0)
    assert controlplane.wait_for(lambda: len(controlplane.seen("/stream")) == 2)

    # Down, not broken once: one fetch within the jittered wait before the third try.
    assert controlplane.wait_for(lambda: len(controlplane.seen(SNAPSHOT)) == 2)
    controlplane.stream_status = 200

    assert wait_until(lambda: client.streaming)
    assert client.snapshot_fetches == {"start": 1, "stream_down": 1}
    assert client.stream_endings == {"refused": 2}
