"""The two record parsers agree: parse_json_record (msgspec, the API's fast path) gives exactly
what parse_record gives for the same record decoded by orjson, valid or not."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest

from telemetry.records import CallInput, parse_json_record, parse_record, split_batch
from tests.telemetry.call_factories import make_record

NOW = datetime(2026, 11, 25, 12, 30, 15, tzinfo=UTC)
LATEST = NOW + timedelta(minutes=5)


def full_record() -> dict[str, Any]:
    return make_record(
        request_id="req-full",
        timestamp="2026-11-25T12:00:00.250+02:00",
        stop_reason="tool_use",
        usage={
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_creation_input_tokens": 7,
            "cache_read_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4},
            "server_tool_use": {
                "web_search_requests": 2,
                "web_fetch_requests": 1,
                "code_execution_requests": 5,
            },
            "iterations": [{"type": "compaction", "input_tokens": 4}],
            "service_tier": "priority",
            "inference_geo": "us",
        },
        latency_ms=2380.5,
        ttft_ms=612,
        flag_state="fs1:production:support-chat:7:candidate:split-12:1043",
        user_id="user-42",
        session_id="sess-9f1c",
        surface="chat",
        error={"type": "overloaded_error", "status": 529},
        sample={"input": [{"role": "user", "content": "Où est mon colis ?"}], "output": "parti"},
        unknown_key={"ignored": [1, 2.5, None]},
    )


def with_change(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The full record with the value at `path` replaced (or removed, for REMOVE)."""
    record = full_record()
    container = record
    for key in path[:-1]:
        container = container[key]
    if value is REMOVE:
        container.pop(path[-1], None)
    else:
        container[path[-1]] = value
    return record


class _Remove:
    def __repr__(self) -> str:
        return "removed"


REMOVE = _Remove()
TOKENS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
COUNTS = (REMOVE, None, 0, -1, 10**9, 10**9 + 1, 5.0, True, "5", 2**64, 2**70)
TEXTS = (None, "", 1, "x" * 33, "x" * 201)
# Every field, with values that parse_record accepts and values it rejects.
VALUES: dict[tuple[str, ...], tuple[Any, ...]] = {
    ("request_id",): (REMOVE, None, "", 5, "x" * 201, "é" * 200),
    ("model",): (REMOVE, None, "", 5, "x" * 101, "é" * 100),
    ("timestamp",): (
        REMOVE,
        None,
        5,
        "yesterday",
        "2026-11-25 12:00:00",
        "2026-11-25",
        "2026-11-25T12:00:00",
        "2030-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
    ),
    ("stop_reason",): (REMOVE, None, "", "end_turn", "a_new_reason", 3, "x" * 65),
    ("usage",): (REMOVE, None, [], "usage", {}),
    **{("usage", key): COUNTS for key in TOKENS},
    ("usage", "cache_creation"): (REMOVE, None, [], {}, {"ephemeral_5m_input_tokens": None}),
    ("usage", "cache_creation", "ephemeral_5m_input_tokens"): (REMOVE, None, -3, False, 1.5, 10**9 + 1),
    ("usage", "cache_creation", "ephemeral_1h_input_tokens"): (None, 2**64, "1"),
    ("usage", "server_tool_use"): (
        REMOVE,
        None,
        {},
        [],
        {"web_search_requests": -1},
        {"x" * 65: 1},
        {"x" * 64: 1},
        {"web_fetch_requests": 2**31},
        {"web_fetch_requests": 2**31 - 1},
        {"other": True},
    ),
    ("usage", "iterations"): (REMOVE, None, [], {}, "many", [1, "a", None]),
    ("usage", "service_tier"): TEXTS,
    ("usage", "inference_geo"): TEXTS,
    ("latency_ms",): (REMOVE, None, 0, 0.5, 1.5, 2**31 - 1, 2**31, -1, True, "850", 2.0**31),
    ("ttft_ms",): (None, 7.49, -0.1),
    ("flag_state",): (None, "", "x" * 300, "x" * 301, ["fs1"]),
    ("user_id",): (REMOVE, None, 42, -7, 2**63, 2**64 - 1, 2**64, True, 4.2, "x" * 201),
    ("session_id",): TEXTS,
    ("surface",): TEXTS,
    ("error",): (
        REMOVE,
        None,
        {},
        [],
        "boom",
        {"type": None},
        {"type": ""},
        {"type": "api_error", "status": None},
        {"type": "x" * 65},
    ),
    ("error", "status"): (REMOVE, 0, 999, 1000, -1, "500", 500.0),
    ("sample",): (REMOVE, None, {}, [], "text", {"input": "x" * 10}),
}
CHANGES = [(path, value) for path, values in VALUES.items() for value in values]


def parse_both(record: Any, index: int = 0) -> tuple[CallInput | list[Any], CallInput | list[Any]]:
    # The standard library writes ints past 64 bits, which orjson cannot.
    text = json.dumps(record, ensure_ascii=False).encode()
    slow = parse_record(orjson.loads(text), index, now=NOW, latest=LATEST)
    raw = msgspec.json.decode(b"[" + text + b"]", type=list[msgspec.Raw])[0]
    fast = parse_json_record(raw, index, now=NOW, latest=LATEST)
    return slow, fast


def test_parse_json_record__full_record__same_call_as_parse_record():
    slow, fast = parse_both(full_record(), index=3)

    assert isinstance(fast, CallInput)
    assert fast == slow


@pytest.mark.parametrize(
    ("path", "value"),
    CHANGES,
    ids=lambda item: ".".join(item) if isinstance(item, tuple) else repr(item)[:40],
)
def test_parse_json_record__changed_field__same_result_as_parse_record(path, value):
    slow, fast = parse_both(with_change(path, value if value is REMOVE else copy.deepcopy(value)))

    assert fast == slow


@pytest.mark.parametrize("record", [None, 5, "record", [], [1], {}, {"request_id": "r"}])
def test_parse_json_record__not_a_record__same_errors_as_parse_record(record):
    slow, fast = parse_both(record, index=7)

    assert fast == slow
    assert isinstance(fast, list)


def test_parse_json_record__number_orjson_refuses__raises_json_decode_error():
    raw = msgspec.json.decode(
        b'[{"request_id": "r", "model": "m", "latency_ms": 1e400}]', type=list[msgspec.Raw]
    )[0]

    with pytest.raises(orjson.JSONDecodeError):
        parse_json_record(raw, 0, now=NOW, latest=LATEST)


def test_split_batch__batch__each_record_as_its_text():
    records = split_batch(b'{"records": [{"a": 1}, [2], "x"], "other": 1}')

    assert records is not None
    assert [bytes(memoryview(record)) for record in records] == [b'{"a": 1}', b"[2]", b'"x"']


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"records": {}}',
        b'{"other": []}',
        b'{"records": [1]} trailing',
        b'{"records": [{"user_id": "a\\u0000b"}]}',
    ],
)
def test_split_batch__not_a_plain_batch_or_a_nul__none(body):
    assert split_batch(body) is None
