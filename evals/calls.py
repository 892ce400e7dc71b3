"""One eval case sent to the Messages API: the timed call, its retries, and what a failure means.

No Django here: the run service decides what to store; this module only talks to the SDK
client it is given (built with `max_retries=0`, so that the retry policy is this one, in one
place, and the run can tell a 429 storm from a single 429).

Failure kinds, and what the run does with them:
- `fatal` (401, 403, 402): every later call would fail the same way → the run fails.
- `retryable` (429, 529, other 5xx, a connection error or timeout, an `overloaded_error` in
  the middle of a stream, a stream cut short before `message_stop`): retried after
  `retry-after` when the API gives one, else after a jittered exponential backoff; still failing after
  `max_attempts` → the run pauses.
- `case` (any other 4xx, e.g. a prompt over the context window): this case errors and the
  run goes on.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import anthropic
import httpx2

from evals.message_stream import StreamFailed, read_message
from evals.scorers import Answer
from flagstaff.render import RenderedRequest

FailureKind = Literal["fatal", "retryable", "case"]
FATAL_STATUSES = frozenset({401, 402, 403})
# An `event: error` of these types, or a stream cut off before its end, is the API's trouble,
# not the case's: the call is tried again.
RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "incomplete_stream"})
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0


@dataclass(frozen=True)
class CallResult:
    """A stored-to-be answer: the part of a case that was paid for."""

    output: list[dict[str, Any]]
    text: str
    stop_reason: str
    usage: dict[str, Any]
    model: str
    request_id: str
    latency_ms: int | None
    ttft_ms: int | None

    def for_scorers(self) -> Answer:
        tokens = self.usage.get("output_tokens")
        return Answer(
            content=self.output,
            stop_reason=self.stop_reason or None,
            output_tokens=tokens if isinstance(tokens, int) else None,
        )


@dataclass(frozen=True)
class CallFailure:
    kind: FailureKind
    reason: str
    status: int | None = None
    retry_after: float | None = None


class CallFailed(Exception):
    def __init__(self, failure: CallFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def result_from_message(
    message: Any, *, request_id: str | None, latency_ms: int | None, ttft_ms: int | None
) -> CallResult:
    """Turn an SDK `Message` (or `BetaMessage`) into the stored shape."""
    content = [block.model_dump(mode="json", exclude_none=True) for block in message.content]
    return CallResult(
        output=content,
        text="".join(block.get("text", "") for block in content if block.get("type") == "text"),
        stop_reason=message.stop_reason or "",
        usage=message.usage.model_dump(mode="json", exclude_none=True),
        model=message.model,
        request_id=request_id or "",
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
    )


def stream_once(client: anthropic.Anthropic, request: RenderedRequest) -> CallResult:
    """Send one streamed request; TTFT is the first content delta, latency the whole answer.

    The request goes through the SDK (auth, headers, base URL, status errors); the answer's
    events are read from the raw response by `evals.message_stream`, which costs a fraction of
    the SDK's event objects.
    """
    api: Any = client.beta.messages if request.beta else client.messages
    started = time.perf_counter()
    try:
        with api.with_streaming_response.create(**request.kwargs, stream=True) as response:
            streamed = read_message(response.iter_bytes(), started=started)
            request_id = response.headers.get("request-id")
    except anthropic.APIError as error:
        raise CallFailed(classify(error)) from error
    except StreamFailed as failed:
        raise CallFailed(stream_failure(failed.error_type)) from failed
    except httpx2.TransportError as error:  # the connection broke in the middle of the answer
        raise CallFailed(
            CallFailure("retryable", f"the stream broke off ({type(error).__name__})")
        ) from error
    return CallResult(
        output=streamed.content,
        text="".join(block.get("text", "") for block in streamed.content if block.get("type") == "text"),
        stop_reason=streamed.stop_reason,
        usage=streamed.usage,
        model=streamed.model,
        request_id=request_id or "",
        latency_ms=round((time.perf_counter() - started) * 1000),
        ttft_ms=streamed.ttft_ms,
    )


def classify(error: anthropic.APIError) -> CallFailure:
    """What a failed call means for the run (see the module docstring)."""
    if isinstance(error, anthropic.APIConnectionError):
        return CallFailure("retryable", f"the Anthropic API could not be reached ({type(error).__name__})")
    if not isinstance(error, anthropic.APIStatusError):
        return CallFailure("case", str(error))
    status = error.status_code
    error_type = getattr(error, "type", None) or ""
    detail = f"{status} {error_type}: {_api_message(error)}".strip()
    if status == 200:  # an `event: error` in the middle of a stream
        return stream_failure(error_type)
    if status in FATAL_STATUSES:
        return CallFailure("fatal", detail, status)
    if status == 429 or status >= 500:
        return CallFailure("retryable", detail, status, retry_after(error.response.headers))
    return CallFailure("case", detail, status)


def stream_failure(error_type: str) -> CallFailure:
    """A stream that stopped short: an `event: error` of that type, or one that ended early."""
    kind: FailureKind = "retryable" if error_type in RETRYABLE_STREAM_ERRORS else "case"
    return CallFailure(kind, f"stream interrupted: {error_type}", 200)


def _api_message(error: anthropic.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return error.message


def retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after` (seconds or an HTTP date), or None when absent or unreadable."""
    raw = headers.get("retry-after") if headers is not None else None
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_seconds(attempt: int, retry_after_seconds: float | None, rng: random.Random) -> float:
    """The wait before retry number `attempt` (1-based).

    With `retry-after`, wait that long plus up to 10 % more, so that the run's threads do not
    all come back in the same instant; without it, "full jitter" exponential backoff:
    uniform(0, min(cap, base * 2^attempt)) (Brooker, "Exponential Backoff And Jitter", AWS
    Architecture Blog, 2015), which spreads retries of concurrent callers the most.
    """
    if retry_after_seconds is not None:
        return retry_after_seconds * (1 + 0.1 * rng.random())
    return rng.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def call_with_retries(
    send: Callable[[], CallResult],
    *,
    max_attempts: int,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> CallResult:
    """Call `send` until it answers, a failure is not retryable, or `max_attempts` are spent."""
    rng = rng or random.Random()
    for attempt in range(1, max_attempts + 1):
        try:
            return send()
        except CallFailed as failed:
            if failed.failure.kind != "retryable" or attempt == max_attempts:
                raise
            sleep(backoff_seconds(attempt, failed.failure.retry_after, rng))
    raise AssertionError("unreachable: the last attempt returns or raises")
