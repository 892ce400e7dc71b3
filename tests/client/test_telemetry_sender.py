import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flagstaff import TelemetrySender
from tests.client.fake_controlplane import TOKEN, FakeControlPlane, unreachable_url

MakeSender = Callable[..., TelemetrySender]
POSTS = "/telemetry/calls"


def record(n: int) -> dict[str, Any]:
    return {"request_id": f"req_{n}", "model": "claude-sonnet-5-5", "latency_ms": n}


@pytest.fixture
def make_sender(controlplane: FakeControlPlane) -> Iterator[MakeSender]:
    senders: list[TelemetrySender] = []

    def make(**overrides: Any) -> TelemetrySender:
        options: dict[str, Any] = {"flush_interval": 60.0, "backoff_base": 0.01, "timeout": 2.0}
        sender = TelemetrySender(overrides.pop("url", controlplane.url), TOKEN, **(options | overrides))
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.close(timeout=1.0)


def test_send__batch_size_reached__posts_one_full_batch(
    controlplane: FakeControlPlane, make_sender: MakeSender
) -> None:
    sender = make_sender(batch_size=3)

    for n in range(3):
        sender.send(record(n))

    assert controlplane.wait_for(lambda: len(controlplane.telemetry_batches) == 1)
    assert controlplane.telemetry_batches[0] == [record(0), record(1), record(2)]
    assert controlplane.telemetry_headers[0]["authorization"] == f"Bearer {TOKEN}"


def test_send__flush_interval_elapses__posts_partial_batch(
    controlplane: FakeControlPlane, make_sender: MakeSender
) -> None:
    sender = make_sender(batch_size=100, flush_interval=0.05)

    sender.send(record(1))

    assert controlplane.wait_for(lambda: len(controlplane.telemetry_batches) == 1)
    assert controlplane.telemetry_batches == [[record(1)]]


def test_flush__records_queued__delivered_before_returning(
    controlplane: FakeControlPlane, make_sender: MakeSender
) -> None:
    sender = make_sender(batch_size=2)
    for n in range(5):
        sender.send(record(n))

    assert sender.flush(timeout=5.0)

    assert [len(batch) for batch in controlplane.telemetry_batches] == [2, 2, 1]
    assert (sender.stats().sent, sender.stats().queued) == (5, 0)


def test_deliver__5xx_then_ok__retried_and_sent(
    controlplane: FakeControlPlane, make_sender: MakeSender
) -> None:
    controlplane.fail_telemetry(503, times=2)
    sender = make_sender()
    sender.send(record(1))

    assert sender.flush(timeout=5.0)

    assert [seen.status for seen in controlplane.seen(POSTS)] == [503, 503, 200]
    stats = sender.stats()
    assert (stats.sent, stats.dropped, stats.failed_batches) == (1, 0, 0)


def test_deliver__429_with_retry_after__waits_that_long(
    controlplane: FakeControlPlane, make_sender: MakeSender
) -> None:
    controlplane.fail_telemetry(429, retry_after="1")
    sender = make_sender()
    started = time.monotonic()
    sender.send(record(1))

    assert sender.flush(timeout=5.0)

    assert time.monotonic() - started >= 1.0  # the backoff alone would have been ~10 ms
    assert sender.stats().sent == 1


def test_deliver__4xx__dropped_without_retry(controlplane: FakeControlPlane, make_sender: MakeSender) -> None:
    controlplane.fail_telemetry(400)
    sender = make_sender()
    sender.send(record(1))
    sender.send(record(2))

    assert sender.flush(timeout=5.0)

    assert len(controlplane.seen(POSTS)) == 1
    stats = sender.stats()
    assert (stats.sent, stats.dropped, stats.failed_batches) == (0, 2, 1)


def test_deliver__retries_exhausted__batch_counted_dropped(
    controlplane: FakeControlPlane, make_sender: MakeSender
) -> None:
    controlplane.fail_telemetry(500, times=3)
    sender = make_sender(max_attempts=3)
    sender.send(record(1))

    assert sender.flush(timeout=5.0)

    assert len(controlplane.seen(POSTS)) == 3
    assert (sender.stats().dropped, sender.stats().failed_batches) == (1, 1)


def test_deliver__server_unreachable__retried_then_dropped_never_raised(make_sender: MakeSender) -> None:
    sender = make_sender(url=unreachable_url(), max_attempts=2)

    assert sender.send(record(1)) is True
    assert sender.flush(timeout=5.0)

    assert (sender.stats().dropped, sender.stats().failed_batches) == (1, 1)


def test_deliver__413__batch_split_in_halves(controlplane: FakeControlPlane, make_sender: MakeSender) -> None:
    controlplane.fail_telemetry(413)
    sender = make_sender()
    for n in range(4):
        sender.send(record(n))

    assert sender.flush(timeout=5.0)

    assert [len(batch) for batch in controlplane.telemetry_batches] == [2, 2]
    assert sender.stats().sent == 4


def test_deliver__large_batch__gzipped(controlplane: FakeControlPlane, make_sender: MakeSender) -> None:
    sender = make_sender(gzip_above=100)
    for n in range(10):
        sender.send(record(n))

    assert sender.flush(timeout=5.0)

    assert controlplane.telemetry_headers[0]["content-encoding"] == "gzip"
    assert controlplane.telemetry_batches[0] == [record(n) for n in range(10)]


def test_deliver__server_rejects_some__counted_rejected(
    controlplane: FakeControlPlane, make_sender: MakeSender
) -> None:
    controlplane.telemetry_answer = {"rejected": [{"index": 0, "errors": ["bad"]}]}
    sender = make_sender()
    sender.send(record(1))

    assert sender.flush(timeout=5.0)

    assert (sender.stats().sent, sender.stats().rejected) == (1, 1)


def test_send__queue_full__dropped_without_blocking(
    controlplane: FakeControlPlane, make_sender: MakeSender
) -> None:
    receiving, release = threading.Event(), threading.Event()

    def stall() -> None:
        receiving.set()
        release.wait(5.0)

    controlplane.on_telemetry = stall
    sender = make_sender(batch_size=1, max_queue=3)
    sender.send(record(0))
    assert receiving.wait(5.0)  # the worker is stuck posting record 0

    started = time.monotonic()
    accepted = [sender.send(record(n)) for n in range(1, 6)]
    elapsed = time.monotonic() - started
    release.set()

    assert accepted == [True, True, True, False, False]
    assert elapsed < 0.1
    assert sender.stats().dropped == 2
    assert sender.flush(timeout=5.0)
    assert sender.stats().sent == 4


def test_close__records_pending__flushed_then_later_sends_dropped(
    controlplane: FakeControlPlane, make_sender: MakeSender
) -> None:
    sender = make_sender()
    sender.send(record(1))

    sender.close(timeout=5.0)

    assert controlplane.telemetry_records == [record(1)]
    assert sender.send(record(2)) is False
    assert sender.stats().dropped == 1


def test_send__record_not_json__never_raises(controlplane: FakeControlPlane, make_sender: MakeSender) -> None:
    sender = make_sender()

    assert sender.send({"request_id": "req_1", "when": object()}) is True
    assert sender.flush(timeout=5.0)
    assert sender.stats().sent == 1
