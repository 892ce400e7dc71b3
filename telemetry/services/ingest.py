"""Ingest a batch of call records: validate, attribute, price, store once, roll up.

The hot path of the telemetry app (bench/bench_ingest.py measures it). Per batch, in steps:
1. validate each record (telemetry/records.py: the API hands over each record's JSON text,
   decoded and checked in one step; other callers pass dicts);
2. one query for the environments, flags and versions its flag_state tokens name, then price
   and build the rows in Python;
3. one insert of the new calls (telemetry/services/call_store.py: a binary COPY on
   PostgreSQL, INSERT ... ON CONFLICT DO NOTHING on SQLite or when a call is stored already;
   it says how duplicates are told apart) that returns which calls the database really
   inserted;
4. the rollups of those calls only (RollupBatch in telemetry/services/rollups.py: one
   statement on PostgreSQL);
all in one transaction (tried again by the staged insert when the COPY meets a stored call),
so a batch is stored whole or not at all (its invalid records aside, which are reported and
never stored). A record sent twice, even by two requests at the same moment, is counted once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from msgspec import Raw

from flags.models import ConfigVersion, Environment, Flag
from flagstaff.flag_state import FlagState, FlagStateError
from telemetry.models import CallRecord, Sample
from telemetry.price_table import cached_price_table
from telemetry.records import MAX_INT32, NUL_MESSAGE, CallInput, parse_json_record, parse_record
from telemetry.services.call_store import CallKey, CallRow, StoredAlready, insert_new_calls
from telemetry.services.rollups import RollupBatch

logger = logging.getLogger(__name__)

_NO_JSON: tuple[str | None, str | None] = (None, None)
_new_row = tuple.__new__  # a CallRow from its values in field order, without keyword binding
_NUL_ESCAPE = b"\\u0000"  # PostgreSQL's jsonb refuses it; one such record must not fail a batch


@dataclass(frozen=True, slots=True)
class Attribution:
    environment_id: int | None
    flag_id: int | None
    version: int | None
    arm: str
    split_id: str
    revision: int | None
    attributed: bool
    environment_key: str | None


UNATTRIBUTED = Attribution(None, None, None, "", "", None, False, None)


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
    rejected: dict[int, list[dict[str, str]]] = {}
    calls: list[CallInput] = []
    for index, raw in enumerate(records):
        if type(raw) is Raw:
            parsed = parse_json_record(raw, index, now=now, latest=latest)
        else:
            parsed = parse_record(raw, index, now=now, latest=latest)
        if isinstance(parsed, list):
            rejected[index] = parsed
        else:
            calls.append(parsed)

    attributions = _attribute({call.flag_state for call in calls if call.flag_state})
    if bound_environment is not None:
        calls = _only_environment(calls, attributions, bound_environment, rejected)

    prices = cached_price_table()
    store_raw_user = settings.FLAGSTAFF_TELEMETRY_STORE_RAW_USER_ID
    secret = settings.SECRET_KEY
    rows: list[CallRow] = []
    kept: list[tuple[CallInput, Attribution, int | None]] = []
    samples: dict[CallKey, tuple[bytes, Any, Any]] = {}
    seen: set[CallKey] = set()
    for call in calls:
        attribution = attributions.get(call.flag_state, UNATTRIBUTED) if call.flag_state else UNATTRIBUTED
        key = (call.request_id, attribution.environment_id)
        if key in seen:
            result.duplicate += 1  # the same call twice in one batch: stored once
            continue
        seen.add(key)
        json_columns = _NO_JSON
        if call.server_tool_use is not None or call.iterations is not None:
            encoded = _json_columns(call, rejected)
            if encoded is None:
                continue
            json_columns = encoded
        cost = prices.cost(
            call.model,
            call.timestamp.date(),
            call.service_tier,
            call.inference_geo,
            call.input_tokens,
            call.output_tokens,
            call.cache_write_5m_tokens,
            call.cache_write_1h_tokens,
            call.cache_read_tokens,
        )
        user_hash = _user_hash(secret, call.user_id) if call.user_id else ""
        if call.sample is not None:
            sample = _sample(call.sample)
            if sample is None:
                result.samples_dropped += 1
            else:
                samples[key] = sample
        # Positional, in CallRow's field order (each value is commented with its column): a
        # keyword NamedTuple call costs several times a tuple's, 1,000 times a batch.
        # test_ingest_calls__stored_record__keeps_every_column checks every column.
        rows.append(
            _new_row(
                CallRow,
                (
                    call.request_id,  # request_id
                    call.timestamp,  # timestamp
                    now,  # received_at
                    call.model,  # model
                    call.stop_reason,  # stop_reason
                    call.stop_reason_known,  # stop_reason_known
                    call.input_tokens,  # input_tokens
                    call.output_tokens,  # output_tokens
                    call.cache_write_5m_tokens,  # cache_write_5m_tokens
                    call.cache_write_1h_tokens,  # cache_write_1h_tokens
                    call.cache_read_tokens,  # cache_read_tokens
                    call.web_search_requests,  # web_search_requests
                    call.web_fetch_requests,  # web_fetch_requests
                    json_columns[0],  # server_tool_use
                    json_columns[1],  # iterations
                    call.service_tier,  # service_tier
                    call.inference_geo,  # inference_geo
                    call.latency_ms,  # latency_ms
                    call.ttft_ms,  # ttft_ms
                    call.flag_state,  # flag_state
                    attribution.environment_id,  # environment_id
                    attribution.flag_id,  # flag_id
                    attribution.version,  # version
                    attribution.arm,  # arm
                    attribution.split_id,  # split_id
                    attribution.revision,  # revision
                    attribution.attributed,  # attributed
                    user_hash,  # user_hash
                    call.user_id if store_raw_user else "",  # user_id
                    call.session_id,  # session_id
                    call.surface,  # surface
                    call.error_type,  # error_type
                    call.error_status,  # error_status
                    cost,  # cost_micro_usd
                ),
            )
        )
        kept.append((call, attribution, cost))

    # Outermost (as in a request), a batch that holds a stored call is rolled back and stored
    # again by the staged path (call_store's docstring says why).
    nested = connection.in_atomic_block
    try:
        stored = _store(rows, kept, samples, now, nested=nested, staged=False)
    except StoredAlready:
        logger.info("telemetry batch holds a call stored already; inserting with ON CONFLICT")
        stored = _store(rows, kept, samples, now, nested=nested, staged=True)
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


def _store(
    rows: list[CallRow],
    kept: list[tuple[CallInput, Attribution, int | None]],
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
        rollups = RollupBatch()
        for call, attribution, cost in kept:
            if (call.request_id, attribution.environment_id) not in inserted:
                stored.duplicate += 1
                continue
            stored.accepted += 1
            if not attribution.attributed:
                stored.unattributed += 1
            if cost is None:
                stored.unknown_cost += 1
            rollups.add(
                call,
                environment_id=attribution.environment_id,
                # Unattributed calls roll up under no flag, whatever part of the token resolved.
                flag_id=attribution.flag_id if attribution.attributed else None,
                version=attribution.version if attribution.attributed else None,
                arm=attribution.arm if attribution.attributed else "",
                cost_micro_usd=cost,
            )
        rollups.write()
        # A duplicate's sample was stored with the first send (or dropped then).
        stored.samples_stored = _store_samples(samples, inserted, now)
    return stored


@functools.lru_cache(maxsize=16_384)
def _user_hash(secret: str, user_id: str) -> str:
    """HMAC-SHA256 of the user id under SECRET_KEY. Kept for the process's most recent users
    (a few MiB): a user's calls come in bursts, and a hash costs more than pricing the
    call."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


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
            rejected[call.index] = [{"path": f"records[{call.index}].{path}", "message": NUL_MESSAGE}]
            return None
        texts.append(encoded.decode())
    return texts[0], texts[1]


def _sample(sample: dict[str, Any]) -> tuple[bytes, Any, Any] | None:
    """The sample to store, or None when it is over FLAGSTAFF_SAMPLE_MAX_BYTES or unstorable."""
    encoded = orjson.dumps(sample)
    if len(encoded) > settings.FLAGSTAFF_SAMPLE_MAX_BYTES or _NUL_ESCAPE in encoded:
        return None
    return encoded, sample.get("input"), sample.get("output")


def _attribute(tokens: set[str]) -> dict[str, Attribution]:
    """Resolve each distinct flag_state token of the batch, with one query for them all.

    A token that does not decode, or whose numbers do not fit the columns, resolves to
    nothing (its calls are kept unattributed).
    """
    decoded: dict[str, FlagState] = {}
    for token in tokens:
        try:
            state = FlagState.decode(token)
        except FlagStateError:
            continue
        if (state.version is None or 0 < state.version <= MAX_INT32) and 0 <= state.revision < 2**63:
            decoded[token] = state
    if not decoded:
        return {}
    environments, flags, versions = _lookup(
        {state.environment for state in decoded.values()},
        {state.flag for state in decoded.values()},
        {state.version for state in decoded.values() if state.version is not None},
    )
    resolved = {}
    for token, state in decoded.items():
        environment_id = environments.get(state.environment)
        flag_id = flags.get(state.flag)
        known_version = state.version is None or (flag_id, state.version) in versions
        resolved[token] = Attribution(
            environment_id=environment_id,
            flag_id=flag_id,
            version=state.version,
            arm=(state.arm or "")[:32],
            split_id=(state.split_id or "")[:64],
            revision=state.revision,
            attributed=environment_id is not None and flag_id is not None and known_version,
            environment_key=state.environment,
        )
    return resolved


def _lookup(
    environment_keys: set[str], flag_keys: set[str], numbers: set[int]
) -> tuple[dict[str, int], dict[str, int], set[tuple[int, int]]]:
    """Ids of the named environments and flags, and which (flag id, version number) exist.

    Raw SQL: three ORM querysets cost more CPU to build than the database spends answering.
    """
    quote = connection.ops.quote_name
    tables = {model: quote(model._meta.db_table) for model in (Environment, Flag, ConfigVersion)}

    def placeholders(values: set[Any]) -> str:
        return ", ".join(["%s"] * len(values))

    # Identifiers are the models' table names; every value is a parameter.
    environment_sql = f"SELECT 'e', key, id, 0 FROM {tables[Environment]} WHERE key IN "  # noqa: S608
    flag_sql = f"SELECT 'f', key, id, 0 FROM {tables[Flag]} WHERE key IN "  # noqa: S608
    version_sql = (
        f"SELECT 'v', f.key, v.flag_id, v.number FROM {tables[ConfigVersion]} v "  # noqa: S608
        f"JOIN {tables[Flag]} f ON f.id = v.flag_id WHERE f.key IN "
    )
    parts = [
        f"{environment_sql}({placeholders(environment_keys)})",
        f"{flag_sql}({placeholders(flag_keys)})",
    ]
    params: list[Any] = [*environment_keys, *flag_keys]
    if numbers:
        parts.append(f"{version_sql}({placeholders(flag_keys)}) AND v.number IN ({placeholders(numbers)})")
        params += [*flag_keys, *numbers]
    environments: dict[str, int] = {}
    flags: dict[str, int] = {}
    versions: set[tuple[int, int]] = set()
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for kind, key, ident, number in cursor.fetchall():
            if kind == "e":
                environments[key] = ident
            elif kind == "f":
                flags[key] = ident
            else:
                versions.add((ident, number))
    return environments, flags, versions


def _only_environment(
    calls: list[CallInput],
    attributions: dict[str, Attribution],
    environment: str,
    rejected: dict[int, list[dict[str, str]]],
) -> list[CallInput]:
    """Keep the calls whose flag_state names `environment`; reject the others."""
    kept = []
    for call in calls:
        attribution = attributions.get(call.flag_state) if call.flag_state else None
        if attribution is not None and attribution.environment_key == environment:
            kept.append(call)
            continue
        if not call.flag_state:
            message = f"Is required: this token is bound to environment '{environment}'."
        elif attribution is None:
            message = f"Is not a valid flag_state; this token is bound to environment '{environment}'."
        else:
            message = (
                f"Names environment '{attribution.environment_key}'; this token is bound to '{environment}'."
            )
        rejected[call.index] = [{"path": f"records[{call.index}].flag_state", "message": message}]
    return kept


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
