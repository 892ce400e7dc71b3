"""Ingest a batch of call records: validate, attribute, price, store once, roll up.

The hot path of the telemetry app (bench/bench_ingest.py measures it). Per batch, in steps:
1. validate each record (telemetry/records.py: the API hands over each record's JSON text,
   decoded and checked in one step; other callers pass dicts);
2. one query for the environments, flags and versions its flag_state tokens name, then one
   pass that prices each call and builds its CallRow (positionally, one C call per row);
3. one insert of the new calls (telemetry/services/call_store.py: a binary COPY on
   PostgreSQL, INSERT ... ON CONFLICT DO NOTHING on SQLite or when a call is stored already;
   it says how duplicates are told apart) that returns which calls the database really
   inserted;
4. the rollups of those rows only (RollupBatch in telemetry/services/rollups.py: grouped by
   key in Python, summed per group in C; one statement on PostgreSQL);
all in one transaction (tried again by the staged insert when the COPY meets a stored call),
so a batch is stored whole or not at all (its invalid records aside, which are reported and
never stored). A record sent twice, even by two requests at the same moment, is counted once.

The per-call work of steps 1 to 4 (parsing the common record, the loop that builds the rows,
the COPY's bytes, the rollups' grouping) runs in C when telemetry/_speedups.c is built
(telemetry/services/speedups.py); the Python here is the reference it is tested against.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import msgspec
import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from msgspec import Raw

from telemetry.models import CallRecord, Sample
from telemetry.price_table import cached_price_table
from telemetry.pricing import PricePlan, priced
from telemetry.records import (
    KNOWN_STOP_REASONS,
    NUL_MESSAGE,
    CallInput,
    CallRow,
    Errors,
    decode_record,
    parse_json_record,
    parse_record,
)
from telemetry.services.attribution import UNATTRIBUTED, Attribution, attribute, only_environment
from telemetry.services.call_store import CallKey, StoredAlready, insert_new_calls
from telemetry.services.rollups import RollupBatch
from telemetry.services.speedups import speedups

logger = logging.getLogger(__name__)

_NO_JSON: tuple[str | None, str | None] = (None, None)
_ATTRIBUTED = operator.itemgetter(CallRow._fields.index("attributed"))
_COST = operator.itemgetter(CallRow._fields.index("cost_micro_usd"))
_new_row = tuple.__new__  # a CallRow from its values in field order, without keyword binding
_NUL_ESCAPE = b"\\u0000"  # PostgreSQL's jsonb refuses it; one such record must not fail a batch


@dataclass
class IngestResult:
    accepted: int = 0
    duplicate: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    unattributed: int = 0
    unknown_cost: int = 0
    samples_stored: int = 0
    samples_dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "unattributed": self.unattributed,
            "unknown_cost": self.unknown_cost,
            "samples_stored": self.samples_stored,
            "samples_dropped": self.samples_dropped,
        }


def ingest_calls(
    *,
    records: Sequence[Any],
    bound_environment: str | None = None,
    received_at: datetime | None = None,
) -> IngestResult:
    """Store the valid, new records of a batch and add them to the rollups.

    `records`: each one decoded (a dict, as sent) or its JSON text (`msgspec.Raw`, from
    telemetry.records.split_batch), which is decoded and checked faster; both give the same
    result. A Raw record that is not valid JSON raises orjson.JSONDecodeError.
    `bound_environment` is the key of the environment the sender's token is bound to: then
    a record must carry a flag_state naming that environment, or it is rejected.
    """
    now = received_at or timezone.now()
    latest = now + timedelta(seconds=settings.FLAGSTAFF_TELEMETRY_MAX_FUTURE_SECONDS)
    result = IngestResult()

    def parse_one(record: Any, index: int) -> CallInput | Errors:
        if type(record) is Raw:
            return parse_json_record(record, index, now=now, latest=latest)
        return parse_record(record, index, now=now, latest=latest)

    if speedups is not None and type(records) is list:
        calls, rejected, flag_states = speedups.parse_records(
            records,
            Raw,
            decode_record,
            msgspec.DecodeError,
            parse_one,
            now,
            latest,
            KNOWN_STOP_REASONS,
            datetime.fromisoformat,
            CallInput,
        )
    else:
        calls, rejected, flag_states = _parse_records(records, parse_one)
    attributions = attribute(flag_states)
    if bound_environment is not None:
        calls = only_environment(calls, attributions, bound_environment, rejected)

    prices = cached_price_table()
    store_raw_user = settings.FLAGSTAFF_TELEMETRY_STORE_RAW_USER_ID
    samples: dict[CallKey, tuple[bytes, Any, Any]] = {}

    def json_columns(call: CallInput) -> tuple[str | None, str | None] | None:
        return _json_columns(call, rejected)

    def keep_sample(key: CallKey, sample: dict[str, Any]) -> None:
        stored_sample = _sample(sample)
        if stored_sample is None:
            result.samples_dropped += 1
        else:
            samples[key] = stored_sample

    # Each token's attribution as the row's columns, in CallRow's order (environment_id ...
    # attributed).
    attributed_as = {token: _attribution_columns(attribution) for token, attribution in attributions.items()}
    rows_of = speedups.rows_of if speedups is not None else _rows_of
    rows, duplicates = rows_of(
        calls,
        now,
        attributed_as,
        _attribution_columns(UNATTRIBUTED),
        prices.plan,
        _user_hasher(settings.SECRET_KEY),
        store_raw_user,
        json_columns,
        keep_sample,
        CallRow,
    )
    result.duplicate += duplicates

    # Outermost (as in a request), a batch that holds a stored call is rolled back and stored
    # again by the staged path (call_store's docstring says why).
    nested = connection.in_atomic_block
    try:
        stored = _store(rows, samples, now, nested=nested, staged=False)
    except StoredAlready:
        logger.info("telemetry batch holds a call stored already; inserting with ON CONFLICT")
        stored = _store(rows, samples, now, nested=nested, staged=True)
    result.accepted = stored.accepted
    result.duplicate += stored.duplicate
    result.unattributed = stored.unattributed
    result.unknown_cost = stored.unknown_cost
    result.samples_stored = stored.samples_stored

    result.rejected = [{"index": index, "errors": errors} for index, errors in sorted(rejected.items())]
    logger.info(
        "telemetry batch: %d accepted, %d duplicate, %d rejected, %d unattributed",
        result.accepted,
        result.duplicate,
        len(result.rejected),
        result.unattributed,
    )
    return result


def _parse_records(
    records: Sequence[Any], parse_one: Callable[[Any, int], CallInput | Errors]
) -> tuple[list[CallInput], dict[int, Errors], set[str]]:
    """The batch's valid calls, the errors of each rejected record by its index, and the flag
    states the calls name. telemetry/_speedups.c's parse_records does the same in C for a list,
    parsing the common record itself (tests/telemetry/test_speedups.py compares them)."""
    rejected: dict[int, Errors] = {}
    calls: list[CallInput] = []
    for index, record in enumerate(records):
        parsed = parse_one(record, index)
        if isinstance(parsed, list):
            rejected[index] = parsed
        else:
            calls.append(parsed)
    return calls, rejected, {call.flag_state for call in calls if call.flag_state}


def _rows_of(
    calls: list[CallInput],
    now: datetime,
    attributed_as: dict[str, tuple[Any, ...]],
    unattributed: tuple[Any, ...],
    plan_of: Callable[[str, date, str, str], PricePlan | None],
    user_hash: Callable[[str], str],
    store_raw_user: bool,
    json_columns: Callable[[CallInput], tuple[str | None, str | None] | None],
    keep_sample: Callable[[CallKey, dict[str, Any]], None],
    row_type: type[CallRow],
) -> tuple[list[CallRow], int]:
    """Each new call's row, and how many calls repeated one earlier in the batch: attributed,
    priced, its user hashed. A call whose JSON columns cannot be stored is left out
    (json_columns has rejected it); each sample goes to keep_sample. telemetry/_speedups.c's
    rows_of does the same in C (tests/telemetry/test_speedups.py compares them)."""
    rows: list[CallRow] = []
    seen: set[CallKey] = set()
    duplicates = 0
    for call in calls:
        # Every field at once, in CallInput's order (mypy checks each name's type): one
        # unpacking instead of an attribute read per use, 1,000 times a batch.
        (
            _record_index,
            request_id,
            timestamp,
            model,
            stop_reason,
            stop_reason_known,
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
        ) = call
        environment_id, flag_id, version, arm, split_id, revision, attributed = (
            attributed_as.get(flag_state, unattributed) if flag_state else unattributed
        )
        key = (request_id, environment_id)
        if key in seen:
            duplicates += 1  # the same call twice in one batch: stored once
            continue
        seen.add(key)
        json_texts = _NO_JSON
        if server_tool_use is not None or iterations is not None:
            encoded = json_columns(call)
            if encoded is None:
                continue
            json_texts = encoded
        plan = plan_of(model, timestamp.date(), service_tier, inference_geo)
        cost = priced(plan, input_tokens, output_tokens, cache_5m, cache_1h, cache_read)
        if sample is not None:
            keep_sample(key, sample)
        # Positional, in CallRow's field order (each value is commented with its column).
        # test_ingest_calls__stored_record__keeps_every_column checks every column.
        rows.append(
            _new_row(
                row_type,
                (
                    request_id,  # request_id
                    timestamp,  # timestamp
                    now,  # received_at
                    model,  # model
                    stop_reason,  # stop_reason
                    stop_reason_known,  # stop_reason_known
                    input_tokens,  # input_tokens
                    output_tokens,  # output_tokens
                    cache_5m,  # cache_write_5m_tokens
                    cache_1h,  # cache_write_1h_tokens
                    cache_read,  # cache_read_tokens
                    web_search,  # web_search_requests
                    web_fetch,  # web_fetch_requests
                    json_texts[0],  # server_tool_use
                    json_texts[1],  # iterations
                    service_tier,  # service_tier
                    inference_geo,  # inference_geo
                    latency_ms,  # latency_ms
                    ttft_ms,  # ttft_ms
                    flag_state,  # flag_state
                    environment_id,  # environment_id
                    flag_id,  # flag_id
                    version,  # version
                    arm,  # arm
                    split_id,  # split_id
                    revision,  # revision
                    attributed,  # attributed
                    user_hash(user_id) if user_id else "",  # user_hash
                    user_id if store_raw_user else "",  # user_id
                    session_id,  # session_id
                    surface,  # surface
                    error_type,  # error_type
                    error_status,  # error_status
                    cost,  # cost_micro_usd
                ),
            )
        )
    return rows, duplicates


def _store(
    rows: list[CallRow],
    samples: dict[CallKey, tuple[bytes, Any, Any]],
    now: datetime,
    *,
    nested: bool,
    staged: bool,
) -> IngestResult:
    """Insert the new calls, add them to the rollups and store their samples, in one
    transaction; what it stored (its counts of the rows only). Raises StoredAlready (see
    insert_new_calls)."""
    stored = IngestResult()
    with transaction.atomic():
        inserted = insert_new_calls(rows, nested=nested, staged=staged)
        if len(inserted) < len(rows):
            new_rows = [row for row in rows if (row.request_id, row.environment_id) in inserted]
            stored.duplicate = len(rows) - len(new_rows)
        else:  # the COPY stored every row
            new_rows = rows
        stored.accepted = len(new_rows)
        stored.unattributed = list(map(_ATTRIBUTED, new_rows)).count(False)
        stored.unknown_cost = list(map(_COST, new_rows)).count(None)
        rollups = RollupBatch()
        rollups.add_calls(new_rows)
        rollups.write()
        # A duplicate's sample was stored with the first send (or dropped then).
        stored.samples_stored = _store_samples(samples, inserted, now)
    return stored


def _attribution_columns(
    attribution: Attribution,
) -> tuple[int | None, int | None, int | None, str, str, int | None, bool]:
    return (
        attribution.environment_id,
        attribution.flag_id,
        attribution.version,
        attribution.arm,
        attribution.split_id,
        attribution.revision,
        attribution.attributed,
    )


@functools.lru_cache(maxsize=4)
def _user_hasher(secret: str) -> Callable[[str], str]:
    """HMAC-SHA256 of a user id under `secret` (SECRET_KEY), kept for the process's most recent
    users (a few MiB): a user's calls come in bursts, and a hash costs more than pricing the
    call. One cache per secret, keyed by the user id alone, which lru_cache looks up without
    building a key tuple."""

    @functools.lru_cache(maxsize=16_384)
    def user_hash(user_id: str) -> str:
        return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()

    return user_hash


def _json_columns(
    call: CallInput, rejected: dict[int, list[dict[str, str]]]
) -> tuple[str | None, str | None] | None:
    """server_tool_use and iterations as JSON text, or None (record rejected) when unstorable."""
    texts: list[str | None] = []
    for value, path in (
        (call.server_tool_use, "usage.server_tool_use"),
        (call.iterations, "usage.iterations"),
    ):
        if value is None:
            texts.append(None)
            continue
        encoded = orjson.dumps(value)
        if _NUL_ESCAPE in encoded:
            index = call.record_index
            rejected[index] = [{"path": f"records[{index}].{path}", "message": NUL_MESSAGE}]
            return None
        texts.append(encoded.decode())
    return texts[0], texts[1]


def _sample(sample: dict[str, Any]) -> tuple[bytes, Any, Any] | None:
    """The sample to store, or None when it is over FLAGSTAFF_SAMPLE_MAX_BYTES or unstorable."""
    encoded = orjson.dumps(sample)
    if len(encoded) > settings.FLAGSTAFF_SAMPLE_MAX_BYTES or _NUL_ESCAPE in encoded:
        return None
    return encoded, sample.get("input"), sample.get("output")


def _store_samples(
    samples: dict[CallKey, tuple[bytes, Any, Any]], inserted: set[CallKey], now: datetime
) -> int:
    wanted = [key for key in samples if key in inserted]
    if not wanted:
        return 0
    stored = CallRecord.objects.filter(request_id__in={request_id for request_id, _ in wanted})
    ids: dict[CallKey, int] = {
        (request_id, environment_id): pk
        for request_id, environment_id, pk in stored.values_list("request_id", "environment_id", "id")
    }
    Sample.objects.bulk_create(
        Sample(
            call_id=ids[key],
            input=samples[key][1],
            output=samples[key][2],
            size_bytes=len(samples[key][0]),
            created_at=now,
        )
        for key in wanted
    )
    return len(wanted)
