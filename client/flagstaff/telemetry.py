"""`TelemetrySender`: per-call records posted in background batches to the control plane.

`send` only appends to a bounded in-memory queue: it never blocks on I/O and never raises.
One daemon thread posts batches to `POST /api/v1/telemetry/calls` as `{"records": [...]}`
(gzip above a size), retrying 408/429/5xx and connection errors with exponential backoff and
jitter (a 429's or 503's `Retry-After` wins). A record is counted `dropped` when the queue is
full, the sender is closed, or its batch finally fails; losing telemetry is preferred to
slowing the service down.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from flagstaff import _http

logger = logging.getLogger(__name__)

TELEMETRY_PATH = "/api/v1/telemetry/calls"
MAX_BATCH_SIZE = 1000  # the ingest endpoint's limit per request
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True, slots=True)
class TelemetryStats:
    sent: int
    """Records the server acknowledged (accepted, duplicate or rejected one by one)."""
    dropped: int
    """Records lost: queue full, sender closed, or their batch failed for good."""
    failed_batches: int
    queued: int
    """Records waiting or in flight."""
    rejected: int
    """Records the server refused individually (counted in `sent` too)."""


class TelemetrySender:
    """Batches call records to the control plane from a daemon thread; see the module docstring."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        batch_size: int = 500,
        flush_interval: float = 2.0,
        max_queue: int = 10_000,
        timeout: float = 5.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        gzip_above: int = 16 * 1024,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        if max_queue < 1 or max_attempts < 1 or flush_interval <= 0 or timeout <= 0:
            raise ValueError("max_queue, max_attempts, flush_interval and timeout must be positive")
        self._endpoint = _http.Endpoint.parse(url)
        self._path = self._endpoint.path(TELEMETRY_PATH)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._gzip_above = gzip_above

        # One condition guards the queue and the counters; nobody holds it across I/O.
        self._condition = threading.Condition()
        self._queue: deque[Mapping[str, Any]] = deque()
        self._oldest_at = 0.0
        self._in_flight = 0
        self._flush_waiters = 0
        self._closed = False
        self._sent = self._dropped = self._failed_batches = self._rejected = 0
        self._stopping = threading.Event()  # interrupts retry waits at close
        self._thread = threading.Thread(target=self._run, name="flagstaff-telemetry", daemon=True)
        self._thread.start()

    def send(self, record: Mapping[str, Any]) -> bool:
        """Queue one record; False (and counted as dropped) when it cannot be queued."""
        try:
            with self._condition:
                if self._closed or len(self._queue) >= self._max_queue:
                    self._dropped += 1
                    return False
                first = not self._queue
                if first:
                    self._oldest_at = time.monotonic()
                self._queue.append(record)
                # The worker sleeps without a timeout while the queue is empty: wake it for the
                # first record (it then times the flush interval) and for a full batch.
                if first or len(self._queue) >= self._batch_size:
                    self._condition.notify_all()
            return True
        except Exception:  # telemetry never raises into the caller
            logger.exception("queueing a telemetry record failed")
            return False

    def stats(self) -> TelemetryStats:
        with self._condition:
            return TelemetryStats(
                sent=self._sent,
                dropped=self._dropped,
                failed_batches=self._failed_batches,
                queued=len(self._queue) + self._in_flight,
                rejected=self._rejected,
            )

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued now; True when everything was delivered or given up on in time."""
        with self._condition:
            self._flush_waiters += 1
            self._condition.notify_all()
            try:
                return self._condition.wait_for(lambda: not self._queue and not self._in_flight, timeout)
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float = 5.0) -> None:
        """Refuse new records, flush for up to `timeout` s, then stop; what is left is dropped."""
        deadline = time.monotonic() + timeout
        with self._condition:
            if self._closed and not self._thread.is_alive():
                return
            self._closed = True
        self.flush(timeout)
        self._stopping.set()
        with self._condition:
            self._condition.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._condition:
            if self._queue:
                self._dropped += len(self._queue)
                self._queue.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # The worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception:
                logger.exception("delivering %d telemetry records failed", len(batch))
                self._give_up(batch)
            finally:
                with self._condition:
                    self._in_flight = 0
                    self._condition.notify_all()

    def _next_batch(self) -> list[Mapping[str, Any]] | None:
        """Wait for a full batch, the flush interval, a flush or close; None when stopped."""
        with self._condition:
            while True:
                if self._stopping.is_set():
                    return None
                hurry = self._closed or self._flush_waiters > 0
                if self._queue and (hurry or len(self._queue) >= self._batch_size):
                    break
                if self._queue:
                    remaining = self._oldest_at + self._flush_interval - time.monotonic()
                    if remaining <= 0:
                        break
                    self._condition.wait(remaining)
                else:
                    self._condition.wait()
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            self._in_flight = len(batch)
            self._oldest_at = time.monotonic()
            return batch

    def _deliver(self, batch: list[Mapping[str, Any]]) -> None:
        body = json.dumps({"records": batch}, separators=(",", ":"), default=str).encode()
        headers = dict(self._headers)
        if len(body) > self._gzip_above:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        for attempt in range(self._max_attempts):
            retry_after = None
            try:
                response = _http.request(
                    self._endpoint, "POST", self._path, headers=headers, body=body, timeout=self._timeout
                )
            except _http.TRANSPORT_ERRORS as error:
                logger.debug("telemetry post failed: %r", error)
            else:
                if 200 <= response.status < 300:
                    self._acknowledge(batch, response.body)
                    return
                if response.status == 413 and len(batch) > 1:
                    middle = len(batch) // 2
                    self._deliver(batch[:middle])
                    self._deliver(batch[middle:])
                    return
                if response.status not in RETRYABLE_STATUSES:
                    logger.warning("telemetry batch of %d refused: HTTP %s", len(batch), response.status)
                    break
                retry_after = _http.retry_after_seconds(response.headers.get("retry-after"))
            if attempt + 1 == self._max_attempts:
                break
            if retry_after is not None:
                delay = min(retry_after, MAX_RETRY_AFTER)
            else:
                delay = _http.backoff_delay(attempt, base=self._backoff_base, cap=self._backoff_cap)
            if self._stopping.wait(delay):
                break
        self._give_up(batch)

    def _acknowledge(self, batch: list[Mapping[str, Any]], body: bytes) -> None:
        rejected = _rejected_count(body)
        with self._condition:
            self._sent += len(batch)
            self._rejected += rejected
        if rejected:
            logger.warning("the control plane rejected %d of %d telemetry records", rejected, len(batch))

    def _give_up(self, batch: list[Mapping[str, Any]]) -> None:
        logger.warning("dropping a telemetry batch of %d records", len(batch))
        with self._condition:
            self._failed_batches += 1
            self._dropped += len(batch)


def _rejected_count(body: bytes) -> int:
    """Read `rejected` from the ingest answer: a count, or a list of per-index rejections."""
    try:
        answer = json.loads(body)
    except ValueError:
        return 0
    rejected = answer.get("rejected") if isinstance(answer, dict) else None
    if isinstance(rejected, list | dict):
        return len(rejected)
    return rejected if type(rejected) is int else 0
