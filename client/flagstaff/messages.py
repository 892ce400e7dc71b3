"""`fs.messages.create(...)`: a Claude call made with a resolved config, recorded as telemetry.

Resolve the flag, render the request (flagstaff.render), call `messages.create` or
`beta.messages.create` on the caller's `anthropic.Anthropic`, and queue one call record
(issue 4's shape: request_id, timestamp, model, stop_reason, usage, latency_ms, ttft_ms,
flag_state, user_id, session_id, surface, error, sample) on the Flagstaff's TelemetrySender.
The call's own errors reach the caller after being recorded; recording never raises.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, overload

import anthropic

from flagstaff.resolved import FlagUnavailable, ResolvedConfig

if TYPE_CHECKING:
    from flagstaff.client import Flagstaff

__all__ = ["CallRecorder", "FlagUnavailable", "Messages", "RecordedStream"]

logger = logging.getLogger(__name__)

# Overrides whose dict values are merged into the rendered ones instead of replacing them, so
# that a caller's extra header does not drop the config's pinned anthropic-version.
_MERGED_OVERRIDES = ("extra_headers", "extra_body")


class Messages:
    """Bound to one Flagstaff and one anthropic client; reached as `fs.messages`."""

    def __init__(self, flagstaff: Flagstaff, client: anthropic.Anthropic) -> None:
        self._flagstaff = flagstaff
        self._client = client

    @overload
    def create(
        self,
        *,
        flag: str,
        messages: Sequence[Mapping[str, Any]],
        context: Mapping[str, object] | None = ...,
        stream: Literal[False] = ...,
        default: Mapping[str, Any] | None = ...,
        user_id: str | None = ...,
        session_id: str | None = ...,
        surface: str | None = ...,
        secrets: Callable[[str], str] | None = ...,
        **overrides: Any,
    ) -> Any: ...

    @overload
    def create(
        self,
        *,
        flag: str,
        messages: Sequence[Mapping[str, Any]],
        context: Mapping[str, object] | None = ...,
        stream: Literal[True],
        default: Mapping[str, Any] | None = ...,
        user_id: str | None = ...,
        session_id: str | None = ...,
        surface: str | None = ...,
        secrets: Callable[[str], str] | None = ...,
        **overrides: Any,
    ) -> RecordedStream: ...

    def create(
        self,
        *,
        flag: str,
        messages: Sequence[Mapping[str, Any]],
        context: Mapping[str, object] | None = None,
        stream: bool = False,
        default: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        surface: str | None = None,
        secrets: Callable[[str], str] | None = None,
        **overrides: Any,
    ) -> Any:
        """Call Claude with `flag`'s config for `context`.

        Returns the SDK's Message (BetaMessage for beta configs), or with `stream=True` a
        `RecordedStream` of the SDK's events. `overrides` are extra `create` keyword arguments
        (they win over the config's; `extra_headers`/`extra_body` are merged). Raises
        FlagUnavailable when the flag serves no config and there is no `default`, RenderError
        when the config cannot be rendered, and whatever the SDK raises for the call itself.
        `user_id` defaults to the context's `targetingKey`.
        """
        resolved = self._flagstaff.resolve(flag, context, default=default)
        if resolved.shared_content is None:
            raise FlagUnavailable(resolved)
        rendered = resolved.render(messages=messages, secrets=secrets)
        kwargs = _with_overrides(rendered.kwargs, overrides)
        api = self._client.beta.messages if rendered.beta else self._client.messages
        create: Callable[..., Any] = api.create
        if user_id is None and context is not None:
            unit = context.get("targetingKey")
            user_id = unit if isinstance(unit, str) else None
        rate = self._flagstaff.sample_rates.get(flag, 0.0)
        call = CallRecorder(
            self._flagstaff,
            resolved,
            model=kwargs.get("model"),
            user_id=user_id,
            session_id=session_id,
            surface=surface or resolved.surface,
            sample_input=list(messages) if rate > 0 and random.random() < rate else None,
        )
        try:
            if stream:
                return RecordedStream(create(**kwargs, stream=True), call)
            message = create(**kwargs)
        except anthropic.APIError as error:
            call.finish_error(error)
            raise
        call.finish_message(message)
        return message


class RecordedStream:
    """The SDK's event stream, recorded when it ends, fails or is closed.

    Iterate it like the SDK's `Stream` (same events), or use it as a context manager; close it
    when stopping early so the call is recorded and the connection released.
    """

    def __init__(self, stream: Any, call: CallRecorder) -> None:
        self._stream = stream
        self._call = call
        self.response = stream.response
        self.request_id: str | None = stream.response.headers.get("request-id")
        call.request_id = self.request_id

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            event = self._stream.__next__()
        except StopIteration:
            self._call.finish_stream()
            raise
        except anthropic.APIError as error:
            self._call.finish_error(error)
            raise
        self._call.observe(event)
        return event

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._call.finish_stream()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class CallRecorder:
    """Measures one call and queues its record once; every method swallows its own errors."""

    def __init__(
        self,
        flagstaff: Flagstaff,
        resolved: ResolvedConfig,
        *,
        model: object,
        user_id: str | None,
        session_id: str | None,
        surface: str | None,
        sample_input: list[Mapping[str, Any]] | None,
    ) -> None:
        self._flagstaff = flagstaff
        self._resolved = resolved
        self._record: dict[str, Any] = {
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "model": model if isinstance(model, str) else None,
            "flag_state": resolved.flag_state,
            "user_id": user_id,
            "session_id": session_id,
            "surface": surface,
        }
        self._sample_input = sample_input
        self._started = time.perf_counter()
        self._finished = False
        self.request_id: str | None = None
        self.ttft_ms: int | None = None
        self.latency_ms: int | None = None
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._blocks: dict[int, dict[str, Any]] = {}

    def observe(self, event: Any) -> None:
        """Take what a stream event tells: usage, stop reason, first delta, sampled output."""
        try:
            kind = event.type
            if kind == "content_block_delta":
                if self.ttft_ms is None:
                    self.ttft_ms = self._elapsed_ms()
                if self._sample_input is not None:
                    _append_delta(self._blocks.setdefault(event.index, {}), event.delta)
            elif kind == "message_start":
                self._record["model"] = event.message.model
                self._usage = _dump(event.message.usage)
            elif kind == "content_block_start" and self._sample_input is not None:
                self._blocks[event.index] = _dump(event.content_block)
            elif kind == "message_delta":
                # Delta usage is cumulative: its values replace message_start's.
                self._usage |= _dump(event.usage)
                self._stop_reason = event.delta.stop_reason
            elif kind == "message_stop":
                self.finish_stream()
        except Exception:
            logger.exception("observing a stream event failed")

    def finish_message(self, message: Any) -> None:
        try:
            self.latency_ms = self._elapsed_ms()
            self.request_id = getattr(message, "_request_id", None)
            self._record["model"] = message.model
            self._usage = _dump(message.usage)
            self._stop_reason = message.stop_reason
            output = [_dump(block) for block in message.content]
            self._enqueue(output)
        except Exception:
            logger.exception("recording a call failed")

    def finish_stream(self) -> None:
        if self._finished:
            return
        try:
            self.latency_ms = self._elapsed_ms()
            output = [self._blocks[index] for index in sorted(self._blocks)]
            self._enqueue(output)
        except Exception:
            logger.exception("recording a streamed call failed")

    def finish_error(self, error: anthropic.APIError) -> None:
        if self._finished:
            return
        try:
            self.latency_ms = self._elapsed_ms()
            if isinstance(error, anthropic.APIStatusError):
                self.request_id = error.request_id or self.request_id
                self._record["error"] = {"type": error.type or "api_error", "status": error.status_code}
            elif isinstance(error, anthropic.APITimeoutError):
                self._record["error"] = {"type": "timeout_error"}  # no HTTP status: no answer
            else:
                self._record["error"] = {"type": "connection_error"}
            self._sample_input = None
            self._enqueue(None)
        except Exception:
            logger.exception("recording a failed call failed")

    def _enqueue(self, output: list[dict[str, Any]] | None) -> None:
        self._finished = True
        sender = self._flagstaff.telemetry
        if sender is None:
            return
        record = self._record | {
            # Calls that failed before the API answered have no request-id; a client-made one
            # keeps them countable (and ingest idempotent) all the same.
            "request_id": self.request_id or f"fsreq_{uuid.uuid4().hex}",
            "stop_reason": self._stop_reason,
            "usage": self._usage or None,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
        }
        if self._sample_input is not None and output is not None:
            record["sample"] = {"input": self._sample_input, "output": output}
        sender.send({key: value for key, value in record.items() if value is not None})

    def _elapsed_ms(self) -> int:
        return round((time.perf_counter() - self._started) * 1000)


def _with_overrides(kwargs: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(kwargs)
    for name, value in overrides.items():
        if name in _MERGED_OVERRIDES and isinstance(value, Mapping) and isinstance(merged.get(name), dict):
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    return merged


def _dump(model: Any) -> dict[str, Any]:
    if model is None:
        return {}
    dumped = model.model_dump(mode="json", exclude_none=True)
    return dumped if isinstance(dumped, dict) else {}


def _append_delta(block: dict[str, Any], delta: Any) -> None:
    kind = getattr(delta, "type", None)
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.text
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.thinking
    elif kind == "input_json_delta":
        block["partial_json"] = block.get("partial_json", "") + delta.partial_json
