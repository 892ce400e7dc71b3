"""Message Batches API: create, retrieve, list, cancel, delete and the JSONL results.

A batch stays `in_progress` for the fake's `batch_delay` seconds, then ends with every
request answered as `POST /v1/messages` would have answered it (service tier `batch`). A batch
cancelled before that ends with its requests `canceled`; one whose `expires_at` passes first
ends with them `expired`. Shapes: shared/reference/anthropic-api.md §5.
"""

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from demo.fake_anthropic.wire import JSON, ApiError, Query, RecordedRequest, int_param, one

MAX_REQUESTS = 100_000
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


@dataclass
class Batch:
    id: str
    requests: list[JSON]
    headers: dict[str, str]
    created_at: float
    ends_at: float
    expires_at: float
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    archived_at: float | None = None
    results: list[JSON] = field(default_factory=list)


def _stamp(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


class BatchStore:
    """The batches of one fake.

    `answer(params, headers)` turns one request's params, sent with the batch's headers, into a
    Message or raises ApiError.
    """

    def __init__(self, answer: Callable[[JSON, dict[str, str]], JSON]) -> None:
        self._answer = answer
        self._lock = threading.Lock()
        self._batches: dict[str, Batch] = {}

    def create(self, request: RecordedRequest, *, delay: float, ttl: float, base_url: str) -> JSON:
        body = request.body
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS:
            raise ApiError(400, f"requests: Input should be a list of 1 to {MAX_REQUESTS} items")
        seen: set[str] = set()
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not isinstance(item.get("params"), dict):
                raise ApiError(400, f"requests.{index}: custom_id and params are required")
            if custom_id in seen:
                raise ApiError(400, f"requests.{index}.custom_id: {custom_id!r} is not unique in the batch")
            seen.add(custom_id)
        now = time.time()
        batch = Batch(
            id=f"msgbatch_{secrets.token_hex(12)}",
            requests=requests,
            headers=request.headers,
            created_at=now,
            ends_at=now + delay,
            expires_at=now + ttl,
        )
        with self._lock:
            self._batches[batch.id] = batch
        return self.describe(batch.id, base_url=base_url)

    def _find(self, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"message batch {batch_id!r} not found")
        return batch

    def _advance(self, batch: Batch) -> None:
        """End the batch if its time has come; the answers are produced once, when it ends."""
        if batch.ended_at is not None:
            return
        now = time.time()
        if batch.cancel_initiated_at is not None:
            outcome = "canceled"
        elif now >= batch.expires_at and batch.ends_at > batch.expires_at:
            outcome = "expired"
        elif now >= batch.ends_at:
            outcome = "answer"
        else:
            return
        batch.results = [self._result(request, batch.headers, outcome) for request in batch.requests]
        batch.ended_at = now

    def _result(self, request: JSON, headers: dict[str, str], outcome: str) -> JSON:
        if outcome != "answer":
            return {"custom_id": request["custom_id"], "result": {"type": outcome}}
        try:
            message = self._answer(request["params"], headers)
        except ApiError as error:
            return {"custom_id": request["custom_id"], "result": {"type": "errored", "error": error.error()}}
        return {"custom_id": request["custom_id"], "result": {"type": "succeeded", "message": message}}

    def describe(self, batch_id: str, *, base_url: str) -> JSON:
        with self._lock:
            batch = self._find(batch_id)
            self._advance(batch)
            ended = batch.ended_at is not None
            counts = dict.fromkeys(RESULT_TYPES, 0)
            for result in batch.results:
                counts[result["result"]["type"]] += 1
            if batch.ended_at is not None:
                status = "ended"
            elif batch.cancel_initiated_at is not None:
                status = "canceling"
            else:
                status = "in_progress"
            return {
                "id": batch.id,
                "type": "message_batch",
                "processing_status": status,
                "request_counts": {"processing": 0 if ended else len(batch.requests), **counts},
                "created_at": _stamp(batch.created_at),
                "expires_at": _stamp(batch.expires_at),
                "ended_at": _stamp(batch.ended_at),
                "cancel_initiated_at": _stamp(batch.cancel_initiated_at),
                "archived_at": _stamp(batch.archived_at),
                "results_url": f"{base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
            }

    def page(self, query: Query, *, base_url: str) -> JSON:
        limit = int_param(query, "limit", default=20, maximum=1000)
        with self._lock:
            ids = sorted(self._batches, key=lambda i: self._batches[i].created_at, reverse=True)
        after_id = one(query, "after_id")
        start = ids.index(after_id) + 1 if after_id in ids else 0
        page = [self.describe(batch_id, base_url=base_url) for batch_id in ids[start : start + limit]]
        return {
            "data": page,
            "has_more": start + limit < len(ids),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    def cancel(self, batch_id: str, *, base_url: str) -> JSON:
        with self._lock:
            batch = self._find(batch_id)
            self._advance(batch)
            if batch.ended_at is None and batch.cancel_initiated_at is None:
                batch.cancel_initiated_at = time.time()
        return self.describe(batch_id, base_url=base_url)

    def delete(self, batch_id: str) -> JSON:
        with self._lock:
            batch = self._find(batch_id)
            self._advance(batch)
            if batch.ended_at is None:
                raise ApiError(400, "A batch must end (or be canceled) before it can be deleted")
            del self._batches[batch_id]
        return {"id": batch_id, "type": "message_batch_deleted"}

    def results(self, batch_id: str) -> list[JSON]:
        with self._lock:
            batch = self._find(batch_id)
            self._advance(batch)
            if batch.ended_at is None:
                raise ApiError(400, f"message batch {batch_id!r} has not ended; its results are not ready")
            # Reversed: results are not in request order, so a client must match by custom_id.
            return list(reversed(batch.results))
