"""Validation of one telemetry record as services send it (no Django).

A record is the production logging shape of one Claude call (issue "telemetry", item 1). Every
problem is reported as `{path, message}` with the record's index in the path
(`records[3].usage.output_tokens`). Unknown keys are ignored, so that senders may add fields
before the server knows them. Every value that reaches the database is checked against its
column here: a value that does not fit must reject one record, never fail the batch.

Hand-written rather than a serializer per record: ingest validates up to 1,000 records per
request on the hot path, where a DRF serializer per record would cost far more than the
checks themselves (bench/bench_ingest.py measures ingest).

Two parsers, one set of rules: `parse_record` checks a record already decoded to Python
objects and says what is wrong; `parse_json_record` decodes one record's JSON text straight
into typed structs (msgspec, in C: no dict per object, no Python call per field) and hands
any record that does not fit them to `parse_record`, so every rejection and its messages come
from `parse_record` alone. The structs below are never more permissive than `parse_record`:
`tests/telemetry/test_records.py` runs both on the same valid and invalid records.

`CallInput` is a valid record; `CallRow` the row ingest stores for it (its columns' one list).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson
from msgspec import Meta, Struct

# The stop reasons of the Messages API (reference §2). A value outside this list is stored as
# sent and flagged (`stop_reason_known=False`): new values appear over time.
KNOWN_STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)
# A billion tokens per field is a thousand times any context window, and keeps every sum a
# rollup can reach (and its cost in micro-USD) far inside a 64-bit column.
MAX_TOKENS = 10**9
MAX_INT32 = 2**31 - 1
NAMED_SERVER_TOOLS = ("web_search_requests", "web_fetch_requests")

NUL_MESSAGE = "Must not contain NUL characters."  # PostgreSQL text cannot hold them

Errors = list[dict[str, str]]


class CallInput(NamedTuple):
    """A valid record, with defaults filled in (absent counts are 0, absent strings "").

    A tuple, so that the fast parser makes one in a single C call (`_new_call`) instead of
    a Python `__init__` with a store per field, 1,000 times a batch."""

    record_index: int  # its place in the batch (`index` is a tuple method)
    request_id: str
    timestamp: datetime
    model: str
    stop_reason: str
    stop_reason_known: bool
    input_tokens: int
    output_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    cache_read_tokens: int
    web_search_requests: int
    web_fetch_requests: int
    server_tool_use: dict[str, int] | None
    iterations: list[Any] | None
    service_tier: str
    inference_geo: str
    latency_ms: int | None
    ttft_ms: int | None
    flag_state: str
    user_id: str
    session_id: str
    surface: str
    error_type: str
    error_status: int | None
    sample: dict[str, Any] | None


class CallRow(NamedTuple):
    """One stored call. The one list of the columns: each field carries its PostgreSQL type,
    from which the staging table and the COPY types are made; field order is the order of COPY
    and INSERT. Ingest builds it positionally (in Python and in telemetry/_speedups.c, which
    checks this field list at load); test_ingest_calls__stored_record__keeps_every_column checks
    every column. JSON columns are JSON text."""

    request_id: Annotated[str, "text"]
    timestamp: Annotated[datetime, "timestamptz"]
    received_at: Annotated[datetime, "timestamptz"]
    model: Annotated[str, "text"]
    stop_reason: Annotated[str, "text"]
    stop_reason_known: Annotated[bool, "bool"]
    input_tokens: Annotated[int, "int8"]
    output_tokens: Annotated[int, "int8"]
    cache_write_5m_tokens: Annotated[int, "int8"]
    cache_write_1h_tokens: Annotated[int, "int8"]
    cache_read_tokens: Annotated[int, "int8"]
    web_search_requests: Annotated[int, "int4"]
    web_fetch_requests: Annotated[int, "int4"]
    server_tool_use: Annotated[str | None, "jsonb"]
    iterations: Annotated[str | None, "jsonb"]
    service_tier: Annotated[str, "text"]
    inference_geo: Annotated[str, "text"]
    latency_ms: Annotated[int | None, "int4"]
    ttft_ms: Annotated[int | None, "int4"]
    flag_state: Annotated[str, "text"]
    environment_id: Annotated[int | None, "int8"]
    flag_id: Annotated[int | None, "int8"]
    version: Annotated[int | None, "int4"]
    arm: Annotated[str, "text"]
    split_id: Annotated[str, "text"]
    revision: Annotated[int | None, "int8"]
    attributed: Annotated[bool, "bool"]
    user_hash: Annotated[str, "text"]
    user_id: Annotated[str, "text"]
    session_id: Annotated[str, "text"]
    surface: Annotated[str, "text"]
    error_type: Annotated[str, "text"]
    error_status: Annotated[int | None, "int4"]
    cost_micro_usd: Annotated[int | None, "int8"]


# Each check below is written inline for the common, valid case; the helpers named `_bad_*`
# run only for a value that failed it, to say why: a call per field costs more than the check
# itself, which matters at 1,000 records a request (bench/bench_ingest.py measures ingest).


def _at(index: int, *keys: str) -> str:
    return f"records[{index}]" + "".join(f".{key}" for key in keys)


def _bad_text(value: Any, max_length: int) -> str:
    if type(value) is not str:
        return "Must be a string."
    if len(value) > max_length:
        return f"Must be at most {max_length} characters."
    return NUL_MESSAGE


def _bad_count(value: Any) -> str:
    if type(value) is not int:
        return "Must be a whole number."
    if value < 0:
        return "Must not be negative."
    return f"Must be at most {MAX_TOKENS}."


def _bad_duration(value: Any) -> str:
    if type(value) is not int and type(value) is not float:
        return "Must be a number of milliseconds."
    return f"Must be between 0 and {MAX_INT32}."


def _text(
    container: dict[str, Any], key: str, max_length: int, errors: Errors, index: int, *keys: str
) -> str:
    value = container.get(key)
    if value is None:
        return ""
    if type(value) is str and len(value) <= max_length and "\x00" not in value:
        return value
    errors.append({"path": _at(index, *keys, key), "message": _bad_text(value, max_length)})
    return ""


def _counts(
    container: dict[str, Any], names: tuple[str, ...], errors: Errors, index: int, *keys: str
) -> list[int]:
    values = []
    for name in names:
        value = container.get(name)
        if value is None:
            values.append(0)
        elif type(value) is int and 0 <= value <= MAX_TOKENS:
            values.append(value)
        else:
            errors.append({"path": _at(index, *keys, name), "message": _bad_count(value)})
            values.append(0)
    return values


def _duration(record: dict[str, Any], key: str, errors: Errors, index: int) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    kind = type(value)
    if (kind is int or kind is float) and 0 <= value <= MAX_INT32:
        return round(value)
    errors.append({"path": _at(index, key), "message": _bad_duration(value)})
    return None


def _timestamp(value: Any, errors: Errors, index: int, now: datetime, latest: datetime) -> datetime:
    if value is None:
        return now
    if type(value) is not str:
        errors.append({"path": _at(index, "timestamp"), "message": "Must be an ISO 8601 string."})
        return now
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors.append({"path": _at(index, "timestamp"), "message": "Must be an ISO 8601 date and time."})
        return now
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the documented default for a time without an offset
    elif moment.utcoffset():
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
            errors.append({"path": _at(index, "timestamp"), "message": "Is out of range."})
            return now
    if moment > latest:
        errors.append(
            {
                "path": _at(index, "timestamp"),
                "message": "Is too far in the future; check the sender's clock.",
            }
        )
    return moment


def _object(
    container: dict[str, Any], key: str, errors: Errors, index: int, *keys: str
) -> dict[str, Any] | None:
    value = container.get(key)
    if value is None or type(value) is dict:
        return value
    errors.append({"path": _at(index, *keys, key), "message": "Must be an object."})
    return None


_USAGE_COUNTS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_CACHE_COUNTS = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")


def parse_record(raw: Any, index: int, *, now: datetime, latest: datetime) -> CallInput | Errors:
    """A valid record, or its problems. `now` stands in for a missing timestamp; `latest` is
    the furthest-ahead timestamp accepted."""
    if type(raw) is not dict:
        return [{"path": _at(index), "message": "Must be an object."}]
    errors: Errors = []
    get = raw.get

    request_id = get("request_id")
    if type(request_id) is not str or not request_id or len(request_id) > 200 or "\x00" in request_id:
        message = "Is required: the API's request id."
        if type(request_id) is str and request_id:
            message = _bad_text(request_id, 200)
        errors.append({"path": _at(index, "request_id"), "message": message})
        request_id = ""
    model = get("model")
    if type(model) is not str or not model or len(model) > 100 or "\x00" in model:
        message = "Is required: the model that answered."
        if type(model) is str and model:
            message = _bad_text(model, 100)
        errors.append({"path": _at(index, "model"), "message": message})
        model = ""
    timestamp = _timestamp(get("timestamp"), errors, index, now, latest)
    stop_reason = get("stop_reason")
    if stop_reason is None:
        stop_reason = ""
    elif type(stop_reason) is not str or len(stop_reason) > 64 or "\x00" in stop_reason:
        errors.append({"path": _at(index, "stop_reason"), "message": _bad_text(stop_reason, 64)})
        stop_reason = ""

    input_tokens = output_tokens = cache_5m = cache_1h = cache_read = 0
    web_search = web_fetch = 0
    server_tool_use: dict[str, int] | None = None
    iterations: list[Any] | None = None
    service_tier = inference_geo = ""
    usage = get("usage")
    if usage is not None and type(usage) is not dict:
        usage = _object(raw, "usage", errors, index)
    if usage is not None:
        uget = usage.get
        input_tokens = uget("input_tokens", 0)
        output_tokens = uget("output_tokens", 0)
        cache_read = uget("cache_read_input_tokens", 0)
        cache_total = uget("cache_creation_input_tokens", 0)
        if not (
            type(input_tokens) is int
            and type(output_tokens) is int
            and type(cache_read) is int
            and type(cache_total) is int
            and 0 <= input_tokens <= MAX_TOKENS
            and 0 <= output_tokens <= MAX_TOKENS
            and 0 <= cache_read <= MAX_TOKENS
            and 0 <= cache_total <= MAX_TOKENS
        ):
            input_tokens, output_tokens, cache_read, cache_total = _counts(
                usage, _USAGE_COUNTS, errors, index, "usage"
            )
        cache_creation = uget("cache_creation")
        if type(cache_creation) is dict:
            # The split by TTL is what is billed; the total is their sum.
            cache_5m = cache_creation.get("ephemeral_5m_input_tokens", 0)
            cache_1h = cache_creation.get("ephemeral_1h_input_tokens", 0)
            if not (
                type(cache_5m) is int
                and type(cache_1h) is int
                and 0 <= cache_5m <= MAX_TOKENS
                and 0 <= cache_1h <= MAX_TOKENS
            ):
                cache_5m, cache_1h = _counts(
                    cache_creation, _CACHE_COUNTS, errors, index, "usage", "cache_creation"
                )
        else:
            _object(usage, "cache_creation", errors, index, "usage")
            cache_5m = cache_total  # without the split, the default TTL (5 minutes)
        tools = _object(usage, "server_tool_use", errors, index, "usage")
        if tools is not None:
            web_search, web_fetch, server_tool_use = _server_tools(tools, errors, index)
        iterations = usage.get("iterations")
        if iterations is not None and type(iterations) is not list:
            errors.append({"path": _at(index, "usage", "iterations"), "message": "Must be a list."})
            iterations = None
        service_tier = _text(usage, "service_tier", 32, errors, index, "usage")
        inference_geo = _text(usage, "inference_geo", 32, errors, index, "usage")

    error_type = ""
    error_status: int | None = None
    error = get("error")
    if error is not None:
        error_type, error_status = _error(error, errors, index)

    user_id = get("user_id")
    if user_id is None:
        user_id = ""
    elif type(user_id) is int:
        user_id = str(user_id)
    elif type(user_id) is not str or len(user_id) > 200 or "\x00" in user_id:
        errors.append({"path": _at(index, "user_id"), "message": _bad_text(user_id, 200)})
        user_id = ""

    sample = _object(raw, "sample", errors, index)
    flag_state = _text(raw, "flag_state", 300, errors, index)
    session_id = _text(raw, "session_id", 200, errors, index)
    surface = _text(raw, "surface", 32, errors, index)
    latency_ms = get("latency_ms")
    if type(latency_ms) is int and 0 <= latency_ms <= MAX_INT32:
        pass
    else:
        latency_ms = _duration(raw, "latency_ms", errors, index)
    ttft_ms = get("ttft_ms")
    if type(ttft_ms) is int and 0 <= ttft_ms <= MAX_INT32:
        pass
    else:
        ttft_ms = _duration(raw, "ttft_ms", errors, index)
    if errors:
        return errors
    return CallInput(
        index,
        request_id,
        timestamp,
        model,
        stop_reason,
        not stop_reason or stop_reason in KNOWN_STOP_REASONS,
        input_tokens,
        output_tokens,
        cache_5m,
        cache_1h,
        cache_read,
        web_search,
        web_fetch,
        server_tool_use,
        iterations,
        service_tier,
        inference_geo,
        latency_ms,
        ttft_ms,
        flag_state,
        user_id,
        session_id,
        surface,
        error_type,
        error_status,
        sample,
    )


def _server_tools(
    tools: dict[str, Any], errors: Errors, index: int
) -> tuple[int, int, dict[str, int] | None]:
    """Web search and fetch counts, and the other counters (new tools appear over time)."""
    web_search = web_fetch = 0
    others = {}
    for key, value in tools.items():
        if len(key) > 64 or "\x00" in key:
            errors.append(
                {
                    "path": _at(index, "usage", "server_tool_use"),
                    "message": "Keys must be names of at most 64 characters.",
                }
            )
            break
        if not (type(value) is int and 0 <= value <= MAX_INT32):
            message = (
                _bad_count(value) if type(value) is not int or value < 0 else f"Must be at most {MAX_INT32}."
            )
            errors.append({"path": _at(index, "usage", "server_tool_use", key), "message": message})
        elif key == "web_search_requests":
            web_search = value
        elif key == "web_fetch_requests":
            web_fetch = value
        else:
            others[key] = value
    return web_search, web_fetch, others or None


def _error(error: Any, errors: Errors, index: int) -> tuple[str, int | None]:
    if type(error) is not dict:
        errors.append({"path": _at(index, "error"), "message": "Must be an object."})
        return "", None
    error_type = _text(error, "type", 64, errors, index, "error")
    if not error_type and error.get("type") is None:
        errors.append({"path": _at(index, "error", "type"), "message": "Is required for a failed call."})
    status = error.get("status")
    if status is None:
        return error_type, None
    if type(status) is not int or not 0 <= status <= 999:
        errors.append({"path": _at(index, "error", "status"), "message": "Must be an HTTP status code."})
        return error_type, None
    return error_type, status


# The fast path: records decoded by msgspec into these structs. Each constraint is the check of
# parse_record for the same field; a value outside them sends the record to parse_record. Null
# is accepted wherever parse_record reads null as absent. Ints outside int64 are left out:
# orjson (the slow path's decoder) reads them as floats, which parse_record rejects.
_Count = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]
_Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
_Duration = Annotated[float, Meta(ge=0, le=MAX_INT32)]
_Text32 = Annotated[str, Meta(max_length=32)]
_Text64 = Annotated[str, Meta(max_length=64)]
_Text200 = Annotated[str, Meta(max_length=200)]


class _CacheCreation(Struct, gc=False):
    ephemeral_5m_input_tokens: _Count | None = 0
    ephemeral_1h_input_tokens: _Count | None = 0


class _Usage(Struct, gc=False):
    input_tokens: _Count | None = 0
    output_tokens: _Count | None = 0
    cache_creation_input_tokens: _Count | None = 0
    cache_read_input_tokens: _Count | None = 0
    cache_creation: _CacheCreation | None = None
    server_tool_use: dict[_Text64, Annotated[int, Meta(ge=0, le=MAX_INT32)]] | None = None
    iterations: msgspec.Raw | None = None  # any list, decoded by orjson as parse_record's is
    service_tier: _Text32 | None = None
    inference_geo: _Text32 | None = None


class _Error(Struct, gc=False):
    type: _Text64
    status: Annotated[int, Meta(ge=0, le=999)] | None = None


class _Record(Struct, gc=False):
    request_id: Annotated[str, Meta(min_length=1, max_length=200)]
    model: Annotated[str, Meta(min_length=1, max_length=100)]
    timestamp: str | None = None
    stop_reason: _Text64 | None = None
    usage: _Usage | None = None
    latency_ms: _Duration | None = None
    ttft_ms: _Duration | None = None
    flag_state: Annotated[str, Meta(max_length=300)] | None = None
    user_id: _Text200 | _Int64 | None = None
    session_id: _Text200 | None = None
    surface: _Text32 | None = None
    error: _Error | None = None
    sample: msgspec.Raw | None = None  # any object, decoded by orjson as parse_record's is


class _Batch(Struct, gc=False):
    records: list[msgspec.Raw]


# One record's JSON text into its struct; raises msgspec.DecodeError (its subclass
# ValidationError for a value out of bounds) when the record does not fit.
decode_record = msgspec.json.Decoder(_Record).decode
_decode_batch = msgspec.json.Decoder(_Batch).decode
_fromisoformat = datetime.fromisoformat


def split_batch(body: bytes) -> list[msgspec.Raw] | None:
    """The JSON text of each record of a batch body `{"records": [...]}`, or None when the body
    is not that (the caller then decodes it the slow way, which says what is wrong) or holds an
    escaped NUL character anywhere (the fast path does not look for NULs, parse_record does)."""
    # A backslash first: one memchr, where the six-byte search costs as much as the split itself
    # (0.3 ms for 1,000 records, whose digits keep matching its last byte).
    if b"\\" in body and b"\\u0000" in body:
        return None
    try:
        return _decode_batch(body).records
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


_new_call = tuple.__new__  # a CallInput from its values in field order, without keyword binding


def parse_json_record(raw: msgspec.Raw, index: int, *, now: datetime, latest: datetime) -> CallInput | Errors:
    """The same as parse_record(orjson.loads(raw), ...), faster for a valid record.

    Raises orjson.JSONDecodeError when the record's text is not JSON orjson accepts: the batch
    as a whole is then not valid JSON.
    """
    try:
        record = decode_record(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return parse_record(orjson.loads(memoryview(raw)), index, now=now, latest=latest)
    timestamp = now
    if record.timestamp is not None:
        try:
            parsed: datetime | None = _fromisoformat(record.timestamp)
        except ValueError:
            parsed = None
        # The common case inline (UTC, not ahead); _timestamp handles and judges every other.
        if parsed is not None and parsed.tzinfo is UTC and parsed <= latest:
            timestamp = parsed
        else:
            errors: Errors = []
            timestamp = _timestamp(record.timestamp, errors, index, now, latest)
            if errors:
                return parse_record(orjson.loads(memoryview(raw)), index, now=now, latest=latest)
    input_tokens = output_tokens = cache_5m = cache_1h = cache_read = 0
    web_search = web_fetch = 0
    server_tool_use: dict[str, int] | None = None
    iterations: list[Any] | None = None
    service_tier = inference_geo = ""
    usage = record.usage
    if usage is not None:
        input_tokens = usage.input_tokens or 0
        output_tokens = usage.output_tokens or 0
        cache_read = usage.cache_read_input_tokens or 0
        cache_creation = usage.cache_creation
        if cache_creation is None:
            cache_5m = usage.cache_creation_input_tokens or 0  # without the split, the 5-minute TTL
        else:
            cache_5m = cache_creation.ephemeral_5m_input_tokens or 0
            cache_1h = cache_creation.ephemeral_1h_input_tokens or 0
        if usage.server_tool_use is not None:
            tools = dict(usage.server_tool_use)
            web_search = tools.pop("web_search_requests", 0)
            web_fetch = tools.pop("web_fetch_requests", 0)
            server_tool_use = tools or None
        if usage.iterations is not None:
            iterations = orjson.loads(memoryview(usage.iterations))
            if iterations is not None and type(iterations) is not list:
                return parse_record(orjson.loads(memoryview(raw)), index, now=now, latest=latest)
        service_tier = usage.service_tier or ""
        inference_geo = usage.inference_geo or ""
    sample: dict[str, Any] | None = None
    if record.sample is not None:
        sample = orjson.loads(memoryview(record.sample))
        if sample is not None and type(sample) is not dict:
            return parse_record(orjson.loads(memoryview(raw)), index, now=now, latest=latest)
    error = record.error
    user_id = record.user_id
    latency_ms = record.latency_ms
    ttft_ms = record.ttft_ms
    stop_reason = record.stop_reason or ""
    # Positional, in CallInput's field order (each value is commented with its field);
    # test_parse_json_record__full_record__same_call_as_parse_record compares every field.
    return _new_call(
        CallInput,
        (
            index,  # record_index
            record.request_id,  # request_id
            timestamp,  # timestamp
            record.model,  # model
            stop_reason,  # stop_reason
            not stop_reason or stop_reason in KNOWN_STOP_REASONS,  # stop_reason_known
            input_tokens,  # input_tokens
            output_tokens,  # output_tokens
            cache_5m,  # cache_write_5m_tokens
            cache_1h,  # cache_write_1h_tokens
            cache_read,  # cache_read_tokens
            web_search,  # web_search_requests
            web_fetch,  # web_fetch_requests
            server_tool_use,  # server_tool_use
            iterations,  # iterations
            service_tier,  # service_tier
            inference_geo,  # inference_geo
            None if latency_ms is None else round(latency_ms),  # latency_ms
            None if ttft_ms is None else round(ttft_ms),  # ttft_ms
            record.flag_state or "",  # flag_state
            "" if user_id is None else str(user_id),  # user_id
            record.session_id or "",  # session_id
            record.surface or "",  # surface
            "" if error is None else error.type,  # error_type
            None if error is None else error.status,  # error_status
            sample,  # sample
        ),
    )
