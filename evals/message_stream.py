"""A streamed Messages API answer read from its raw server-sent events, without the SDK's models.

The SDK's stream helper builds a pydantic object for every event and a snapshot of the message
after each one: a few milliseconds of CPU per call, which a run at concurrency 32 pays 160 times
a second. An eval run needs only the final message and the time of the first content delta, so
this reads the event stream as bytes, decodes each event's JSON once, and accumulates the message
as plain dicts (orjson), the way the SDK's `accumulate_event` does (anthropic/lib/streaming/_messages.py):
content blocks are started by `content_block_start` and grown by their deltas; `message_delta`
sets the stop reason and overwrites the usage counts it carries (they are cumulative).

The result is shaped like the SDK's `model_dump(mode="json", exclude_none=True)` of the message:
fields that are null are left out of each content block, each citation and the usage; a tool's
`input` is kept as sent (the SDK keeps nulls inside it too).

SSE framing (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
lines end with LF, CRLF or CR; `event:` names the event, `data:` lines are joined with LF, a line
starting with `:` is a comment, a blank line dispatches the event.

No Django here, and no network: `read_message` takes the byte chunks of the response body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

Clock = Callable[[], float]


class StreamFailed(Exception):
    """The stream did not deliver a whole message: an `error` event, or it ended before `message_stop`."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class StreamedMessage:
    content: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, Any]
    model: str
    ttft_ms: int | None  # from `started` to the first content delta


def read_message(
    chunks: Iterable[bytes], *, started: float, clock: Clock = time.perf_counter
) -> StreamedMessage:
    """The message of a Messages API event stream given as byte chunks.

    Raises StreamFailed for an `error` event (with the error's type, e.g. `overloaded_error`) and
    for a stream that ends without `message_stop` (type `incomplete_stream`) or holds an event
    that is not the API's (type `invalid_stream`).
    """
    message = _Accumulator(started, clock)
    events = _events(chunks)
    for name, data in events:
        try:
            if message.apply(name, data):
                for _ in events:  # read the body to its end, so that its connection is reused
                    pass
                return message.result()
        except (KeyError, IndexError, TypeError, AttributeError, orjson.JSONDecodeError) as error:
            raise StreamFailed("invalid_stream", f"{name}: not a Messages API event ({error!r})") from error
    raise StreamFailed("incomplete_stream", "the stream ended before message_stop")


def _events(chunks: Iterable[bytes]) -> Iterable[tuple[str, bytes]]:
    """(event name, data) of each dispatched event; events without data are skipped."""
    pending = b""
    name, data = "", b""
    for chunk in chunks:
        text = pending + chunk
        # A CR that ends the chunk may be the first half of a CRLF: it waits for the next chunk.
        held = b"\r" if text.endswith(b"\r") else b""
        lines = text[: len(text) - len(held)].replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        pending = lines.pop() + held  # an unfinished line waits for the next chunk
        for line in lines:
            if not line:
                if data:
                    yield name or "message", data[:-1]
                name, data = "", b""
                continue
            field, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if field == b"event":
                name = value.decode()
            elif field == b"data":
                data += value + b"\n"
    # A last event not followed by a blank line is incomplete: the spec discards it.


class _Accumulator:
    def __init__(self, started: float, clock: Clock) -> None:
        self.started, self.clock = started, clock
        self.message: dict[str, Any] | None = None
        self.json_inputs: dict[int, str] = {}
        self.ttft_ms: int | None = None

    def apply(self, name: str, data: bytes) -> bool:
        """Fold one event into the message; True once the message is complete."""
        if name == "ping":
            return False
        if name == "content_block_delta" and self.ttft_ms is None:
            self.ttft_ms = round((self.clock() - self.started) * 1000)
        event = orjson.loads(data)
        if name == "error":
            error = event.get("error") if isinstance(event, dict) else None
            error = error if isinstance(error, dict) else {}
            raise StreamFailed(
                str(error.get("type") or "api_error"), str(error.get("message") or data.decode())
            )
        if name == "message_start":
            self.message = dict(event["message"])
            self.message["content"] = list(self.message.get("content") or [])
            self.message["usage"] = dict(self.message.get("usage") or {})
            return False
        if self.message is None:
            raise StreamFailed("invalid_stream", f"{name} before message_start")
        if name == "content_block_start":
            self.message["content"].append(dict(event["content_block"]))
        elif name == "content_block_delta":
            self._delta(event["index"], event["delta"])
        elif name == "content_block_stop":
            self._finish_input(event["index"])
        elif name == "message_delta":
            self._message_delta(event)
        return name == "message_stop"

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        assert self.message is not None
        block = self.message["content"][index]
        kind = delta.get("type")
        if kind == "text_delta" and block.get("type") == "text":
            block["text"] = block.get("text", "") + delta["text"]
        elif kind == "input_json_delta" and "input" in block:
            self.json_inputs[index] = self.json_inputs.get(index, "") + delta["partial_json"]
        elif kind == "citations_delta" and block.get("type") == "text":
            block["citations"] = [*(block.get("citations") or []), delta["citation"]]
        elif kind == "thinking_delta" and block.get("type") == "thinking":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
        elif kind == "signature_delta" and block.get("type") == "thinking":
            block["signature"] = delta["signature"]

    def _finish_input(self, index: int) -> None:
        raw = self.json_inputs.pop(index, "")
        if raw and self.message is not None:
            self.message["content"][index]["input"] = orjson.loads(raw)

    def _message_delta(self, event: dict[str, Any]) -> None:
        assert self.message is not None
        delta = event.get("delta") or {}
        for key in ("stop_reason", "stop_sequence", "stop_details"):
            self.message[key] = delta.get(key)
        if delta.get("container") is not None:
            self.message["container"] = delta["container"]
        usage = event.get("usage") or {}
        self.message["usage"]["output_tokens"] = usage.get("output_tokens")
        # Cumulative totals that overwrite; one left out keeps the message_start value.
        for key, value in usage.items():
            if key != "output_tokens" and value is not None:
                self.message["usage"][key] = value

    def result(self) -> StreamedMessage:
        assert self.message is not None
        for index in list(self.json_inputs):
            self._finish_input(index)
        content = []
        for block in self.message["content"]:
            block = _without_nulls(block)
            if isinstance(block.get("citations"), list):
                block["citations"] = [
                    _without_nulls(c) if isinstance(c, dict) else c for c in block["citations"]
                ]
            content.append(block)
        return StreamedMessage(
            content=content,
            stop_reason=str(self.message.get("stop_reason") or ""),
            usage=_without_nulls(self.message["usage"], nested=True),
            model=str(self.message.get("model") or ""),
            ttft_ms=self.ttft_ms,
        )


def _without_nulls(fields: dict[str, Any], *, nested: bool = False) -> dict[str, Any]:
    return {
        key: _without_nulls(value, nested=True) if nested and isinstance(value, dict) else value
        for key, value in fields.items()
        if value is not None
    }
