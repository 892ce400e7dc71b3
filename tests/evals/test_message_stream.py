"""The lean reader of streamed answers, against the SDK's own accumulation of the same events.

Real streams come from the fake server through the SDK's raw response; hand-written streams cover
what the fake does not send (tool input, thinking, CRLF framing, an event split across chunks).
"""

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from evals.message_stream import StreamFailed, read_message
from flagstaff.render import render_request

CONTENT = {"model": "claude-sonnet-5-5", "max_tokens": 200, "system": "Answer briefly."}


@pytest.fixture
def client(fake_anthropic: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=DEFAULT_API_KEY, base_url=fake_anthropic.base_url, max_retries=0) as sdk:
        yield sdk


def raw_stream(client: anthropic.Anthropic, prompt: str) -> list[bytes]:
    """The body of a streamed answer as the SDK's raw response gives it, chunk by chunk."""
    kwargs = render_request(CONTENT, messages=[{"role": "user", "content": prompt}]).kwargs
    with client.messages.with_streaming_response.create(**kwargs, stream=True) as response:
        return list(response.iter_bytes())


def sse(*events: tuple[str, dict[str, Any]], newline: bytes = b"\n") -> bytes:
    return b"".join(
        b"event: %s%sdata: %s%s%s" % (name.encode(), newline, json.dumps(data).encode(), newline, newline)
        for name, data in events
    )


def sdk_message(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the SDK's stream helper makes of these events, as the run stored it before."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    assert snapshot is not None
    return snapshot.model_dump(mode="json", exclude_none=True)


def events_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")]


def test_read_message__fake_server_stream__same_message_as_the_sdk(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.script_reply("[m1]", "Paris is the capital of France.")
    chunks = raw_stream(client, "Capital? [m1]")

    message = read_message(chunks, started=0.0, clock=lambda: 0.25)

    expected = sdk_message([e for e in events_of(b"".join(chunks)) if e["type"] != "ping"])
    assert (
        message.content
        == expected["content"]
        == [{"type": "text", "text": "Paris is the capital of France."}]
    )
    assert message.usage == expected["usage"]
    assert (message.stop_reason, message.model) == (expected["stop_reason"], expected["model"])
    assert message.ttft_ms == 250


def test_read_message__sparse_usage__nulls_left_out_as_the_sdk_does(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.sparse_usage = True
    chunks = raw_stream(client, "hi")

    message = read_message(chunks, started=0.0)

    assert (
        message.usage == sdk_message([e for e in events_of(b"".join(chunks)) if e["type"] != "ping"])["usage"]
    )
    assert None not in message.usage.values()


def test_read_message__error_event_mid_stream__stream_failed_with_its_type(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.interrupt_next_stream("overloaded_error")
    chunks = raw_stream(client, "hi")

    with pytest.raises(StreamFailed) as failed:
        read_message(chunks, started=0.0)

    assert failed.value.error_type == "overloaded_error"
    assert str(failed.value) == "Overloaded"


def test_read_message__body_ends_before_message_stop__incomplete_stream(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.cut_next_stream()
    chunks = raw_stream(client, "hi")

    with pytest.raises(StreamFailed) as failed:
        read_message(chunks, started=0.0)

    assert failed.value.error_type == "incomplete_stream"


def test_read_message__connection_closed_mid_body__transport_error_raised(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.cut_next_stream(abrupt=True)
    kwargs = render_request(CONTENT, messages=[{"role": "user", "content": "hi"}]).kwargs

    with (
        pytest.raises(httpx2.TransportError),
        client.messages.with_streaming_response.create(**kwargs, stream=True) as response,
    ):
        read_message(response.iter_bytes(), started=0.0)


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, kind: str, **fields: str) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": kind, **fields},
    }


def block_stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


START: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-5-5",
    "content": [],
    "stop_reason": None,
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": None},
}
TOOL_AND_THINKING = [
    ("message_start", {"type": "message_start", "message": START}),
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    block_delta(0, "thinking_delta", thinking="Look it "),
    block_delta(0, "thinking_delta", thinking="up."),
    block_delta(0, "signature_delta", signature="sig"),
    block_stop(0),
    block_start(1, {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {}}),
    ("ping", {"type": "ping"}),
    block_delta(1, "input_json_delta", partial_json='{"city": "Par'),
    block_delta(1, "input_json_delta", partial_json='is", "zip": null}'),
    block_stop(1),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 30, "input_tokens": 12, "cache_read_input_tokens": 5},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def test_read_message__thinking_and_tool_input__same_message_as_the_sdk() -> None:
    body = sse(*TOOL_AND_THINKING)

    message = read_message([body], started=0.0)

    expected = sdk_message([data for name, data in TOOL_AND_THINKING if name != "ping"])
    assert message.content == expected["content"]
    assert message.content[1]["input"] == {"city": "Paris", "zip": None}
    assert (
        message.usage
        == expected["usage"]
        == {"input_tokens": 12, "output_tokens": 30, "cache_read_input_tokens": 5}
    )
    assert message.stop_reason == expected["stop_reason"] == "tool_use"


def test_read_message__crlf_lines_split_across_chunks__same_message() -> None:
    body = b": a comment line\r\n" + sse(*TOOL_AND_THINKING, newline=b"\r\n")
    chunks = [body[start : start + 7] for start in range(0, len(body), 7)]

    # A fixed clock: the first-token time is the clock's, not how long each parse took.
    split = read_message(chunks, started=0.0, clock=lambda: 0.5)
    whole = read_message([sse(*TOOL_AND_THINKING)], started=0.0, clock=lambda: 0.5)

    assert split == whole


def test_read_message__delta_before_message_start__stream_failed() -> None:
    with pytest.raises(StreamFailed) as failed:
        read_message([sse(*TOOL_AND_THINKING[1:])], started=0.0)

    assert failed.value.error_type == "invalid_stream"
