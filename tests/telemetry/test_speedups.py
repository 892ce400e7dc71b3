"""telemetry/_speedups.c gives exactly what ingest's Python gives: the same calls and errors
from the same records, the same rows and costs, the same rollup groups, and the bytes
psycopg's own COPY formatter would send. The Python is the reference; the C is only faster."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson
import pytest
from msgspec import Raw
from psycopg import postgres
from psycopg._copy_base import BinaryFormatter  # psycopg's own formatter: the reference bytes
from psycopg.adapt import AdaptersMap, Transformer
from psycopg.pq import Format

from telemetry.models import CallRecord, Rollup, RollupCount, RollupHistogram
from telemetry.pricing import ModelPricing, PriceTable, TokenCounts
from telemetry.records import (
    KNOWN_STOP_REASONS,
    CallInput,
    CallRow,
    decode_record,
    parse_json_record,
    parse_record,
    split_batch,
)
from telemetry.services import call_store, ingest, rollups
from telemetry.services.call_store import COLUMN_TYPES, COPY_KINDS
from telemetry.services.speedups import speedups
from tests.telemetry.call_factories import make_record
from tests.telemetry.test_pricing import HAIKU, NO_GEO, SONNET, prices
from tests.telemetry.test_records import CHANGES, LATEST, NOW, REMOVE, full_record, with_change

# test_speedups_built.py fails, with the reason, where the module was not built.
pytestmark = pytest.mark.skipif(speedups is None, reason="telemetry/_speedups.c is not built")

TABLE_MODELS = [SONNET, HAIKU, NO_GEO]
# A model whose rates reach the 64-bit edge: the C must price it as Python's ints do.
COSTLY = ModelPricing(
    model_id="claude-costly",
    supports_inference_geo=True,
    prices=prices(("input", "9000000"), ("output", "9000000"), ("cache_read", "9000000")),
)


# --- parse_records ---------------------------------------------------------------------


def _raw(record: Any) -> Raw:
    text = json.dumps(record, ensure_ascii=False).encode()
    return msgspec.json.decode(b"[" + text + b"]", type=list[Raw])[0]


def _parse_one(record: Any, index: int) -> CallInput | list[dict[str, str]]:
    if type(record) is Raw:
        return parse_json_record(record, index, now=NOW, latest=LATEST)
    return parse_record(record, index, now=NOW, latest=LATEST)


def _parse_both(records: list[Any]) -> tuple[Any, Any]:
    python = ingest._parse_records(records, _parse_one)
    assert speedups is not None
    c = speedups.parse_records(
        records,
        Raw,
        decode_record,
        msgspec.DecodeError,
        _parse_one,
        NOW,
        LATEST,
        KNOWN_STOP_REASONS,
        datetime.fromisoformat,
        CallInput,
    )
    return python, c


def _common(**changes: Any) -> dict[str, Any]:
    """A record on the C's own path: no sample, server_tool_use or iterations."""
    record = full_record()
    del record["sample"]
    del record["usage"]["server_tool_use"]
    del record["usage"]["iterations"]
    record["timestamp"] = "2026-11-25T12:00:00.250+00:00"
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("path", "value"),
    CHANGES,
    ids=lambda item: ".".join(item) if isinstance(item, tuple) else repr(item)[:40],
)
def test_parse_records__changed_field__same_as_python(path, value):
    # The change in the full record (sent to the Python by the C: it has a sample), and in a
    # record on the C's own path.
    record = with_change(path, value if value is REMOVE else copy.deepcopy(value))
    common = _common()
    container: Any = common
    for key in path[:-1]:
        container = container.get(key) if isinstance(container, dict) else None
    if isinstance(container, dict) and path != ("sample",):
        if value is REMOVE:
            container.pop(path[-1], None)
        else:
            container[path[-1]] = copy.deepcopy(value)

    python, c = _parse_both([_raw(record), _raw(common), record])

    assert c == python


@pytest.mark.parametrize(
    "timestamp",
    [
        None,
        "2026-11-25T12:00:00+00:00",
        "2026-11-25T12:00:00Z",
        "2026-11-25T12:00:00.5+00:00",
        "2026-11-25T12:00:00",  # no offset: UTC by the Python
        "2026-11-25T14:00:00+02:00",
        "2026-11-25T12:35:15.000001+00:00",  # just past the latest accepted
        "2026-11-25T12:35:15+00:00",  # the latest accepted itself
        "2026-02-30T00:00:00+00:00",
        "not a time",
    ],
)
def test_parse_records__timestamps__same_as_python(timestamp):
    python, c = _parse_both([_raw(_common(timestamp=timestamp))])

    assert c == python


@pytest.mark.parametrize(
    "changes",
    [
        {"latency_ms": 0.5, "ttft_ms": 1.5},  # ties round to even, as round() does
        {"latency_ms": 2.5, "ttft_ms": 2**31 - 1},
        {"latency_ms": 1234.4999, "ttft_ms": None},
        {"user_id": 42},
        {"user_id": -(2**63)},
        {"user_id": ""},
        {"stop_reason": None, "error": {"type": "api_error"}},
        {"stop_reason": "a_new_reason", "error": {"type": "api_error", "status": 500}},
        {"usage": None},
        {"usage": {"cache_creation_input_tokens": 9}},
        {"usage": {"cache_creation": {"ephemeral_1h_input_tokens": 8}, "service_tier": "batch"}},
        {"flag_state": None, "surface": None, "session_id": None},
    ],
    ids=repr,
)
def test_parse_records__common_records__same_as_python(changes):
    python, c = _parse_both([_raw(_common(**changes)), _raw(_common(request_id="second", **changes))])

    assert c == python
    assert len(c[0]) == 2


def test_parse_records__not_records_and_dicts__same_as_python():
    records = [_raw(None), _raw([1]), _raw({}), _common(), _raw(_common(request_id="b")), _raw("x")]

    python, c = _parse_both(records)

    assert c == python
    assert sorted(c[1]) == [0, 1, 2, 5]
    assert c[2] == {"fs1:production:support-chat:7:candidate:split-12:1043"}


def test_parse_records__record_orjson_refuses__raises_as_python():
    raw = msgspec.json.decode(b'[{"request_id": "r", "model": "m", "latency_ms": 1e400}]', type=list[Raw])[0]

    with pytest.raises(orjson.JSONDecodeError):
        ingest._parse_records([raw], _parse_one)
    with pytest.raises(orjson.JSONDecodeError):
        _parse_both([raw])


# --- rows_of ---------------------------------------------------------------------------

ATTRIBUTED = {
    "fs1:production:chat:1:-:-:7": (1, 10, 1, "", "", 7, True),
    "fs1:production:chat:2:canary:split-1:7": (1, 10, 2, "canary", "split-1", 7, True),
    "fs1:staging:chat:1:-:-:3": (2, 11, 1, "", "", 3, True),
}
UNATTRIBUTED = (None, None, None, "", "", None, False)
MODELS = (
    "claude-sonnet-5-5",
    "sonnet-latest",
    "claude-haiku-5-5",
    "claude-haiku-4-5",
    "claude-costly",
    "gone",
)


def _calls(count: int, seed: int) -> list[CallInput]:
    """Calls of every kind the loop tells apart: attributed or not, repeated, every model and
    tier and geo, long prompts, JSON columns (one with a NUL), samples, integer user ids."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 6, 23, 59, tzinfo=UTC)
    calls = []
    for index in range(count):
        request_id = f"req-{rng.randrange(max(1, count * 3 // 4))}"  # about one in four repeated
        tokens = [rng.choice((0, 0, 1, 999, 150_000, 10**9)) for _ in range(5)]
        json_kind = rng.randrange(12)
        sample_kind = rng.randrange(10)
        calls.append(
            CallInput(
                record_index=index,
                request_id=request_id,
                timestamp=(start + timedelta(seconds=rng.randrange(180))).astimezone(
                    rng.choice((UTC, timezone(timedelta(hours=-5))))
                ),
                model=rng.choice(MODELS),
                stop_reason=rng.choice(("", "end_turn", "other")),
                stop_reason_known=rng.random() < 0.8,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                cache_write_5m_tokens=tokens[2],
                cache_write_1h_tokens=tokens[3],
                cache_read_tokens=tokens[4],
                web_search_requests=rng.randrange(3),
                web_fetch_requests=rng.randrange(3),
                server_tool_use={"code_execution_requests": 2} if json_kind == 0 else None,
                iterations=[{"a": "\u0000"}] if json_kind == 1 else ([{"n": 1}] if json_kind == 2 else None),
                service_tier=rng.choice(("", "standard", "batch", "priority")),
                inference_geo=rng.choice(("", "global", "us")),
                latency_ms=rng.choice((None, 0, 850)),
                ttft_ms=rng.choice((None, 120)),
                flag_state=rng.choice(("", *ATTRIBUTED, "fs1:production:unknown:1:-:-:7")),
                user_id=rng.choice(("", "user-1", "user-2", "42")),
                session_id=rng.choice(("", "s")),
                surface="chat",
                error_type=rng.choice(("", "overloaded_error")),
                error_status=rng.choice((None, 529)),
                sample=({"input": "x" * (10 if sample_kind == 0 else 5000)} if sample_kind < 2 else None),
            )
        )
    return calls


def _rows_both(calls: list[CallInput], *, store_raw_user: bool) -> list[Any]:
    outcomes = []
    for rows_of in (ingest._rows_of, speedups.rows_of if speedups is not None else None):
        assert rows_of is not None
        table = PriceTable([*TABLE_MODELS, COSTLY])  # a fresh one per side: no plan is shared
        rejected: dict[int, Any] = {}
        kept: list[tuple[Any, ...]] = []

        def json_columns(call, rejected=rejected):
            return ingest._json_columns(call, rejected)

        def keep_sample(key, sample, kept=kept):
            kept.append((key, ingest.orjson.dumps(sample)))

        rows, duplicates = rows_of(
            calls,
            NOW,
            ATTRIBUTED,
            UNATTRIBUTED,
            table.plan,
            ingest._user_hasher("secret"),
            store_raw_user,
            json_columns,
            keep_sample,
            CallRow,
        )
        assert all(type(row) is CallRow for row in rows)
        outcomes.append((rows, duplicates, rejected, kept))
    return outcomes


@pytest.mark.parametrize("seed", range(6))
def test_rows_of__every_kind_of_call__same_rows_costs_and_rejections(seed):
    python, c = _rows_both(_calls(400, seed), store_raw_user=bool(seed % 2))

    assert c == python
    rows, duplicates, rejected, _ = c
    assert duplicates > 0
    assert rejected
    assert {row.cost_micro_usd is None for row in rows} == {True, False}


def test_rows_of__costs__same_as_price_table_cost():
    calls = _calls(300, seed=11)
    (rows, *_), _ = _rows_both(calls, store_raw_user=False)
    table = PriceTable([*TABLE_MODELS, COSTLY])
    first: dict[tuple[str, int | None], CallInput] = {}
    for call in calls:
        environment_id = ATTRIBUTED.get(call.flag_state, UNATTRIBUTED)[0]
        first.setdefault((call.request_id, environment_id), call)
    for row in rows:
        call = first[(row.request_id, row.environment_id)]
        assert row.cost_micro_usd == table.cost_micro_usd(
            model=call.model,
            on=call.timestamp.date(),
            tokens=TokenCounts(
                call.input_tokens,
                call.output_tokens,
                call.cache_write_5m_tokens,
                call.cache_write_1h_tokens,
                call.cache_read_tokens,
            ),
            service_tier=call.service_tier,
            inference_geo=call.inference_geo,
        )


def test_rows_of__cost_at_the_64_bit_edge__exact_as_python_ints():
    # 10**9 tokens of each priced type at $9,000,000 per million tokens, with the US premium:
    # the sum in pico-USD passes 2**63 before it is rounded to micro-USD.
    call = _calls(1, seed=0)[0]._replace(
        model="claude-costly",
        input_tokens=10**9,
        output_tokens=10**9,
        cache_write_5m_tokens=0,
        cache_write_1h_tokens=0,
        cache_read_tokens=10**9,
        inference_geo="us",
        service_tier="",
        server_tool_use=None,
        iterations=None,
        sample=None,
    )

    python, c = _rows_both([call], store_raw_user=False)

    assert c == python
    assert c[0][0].cost_micro_usd == 3 * 10**9 * 9_000_000 * 11 // 10
    assert c[0][0].cost_micro_usd > 2**63 / 10**6


# --- group_rows ------------------------------------------------------------------------


def test_group_rows__rows_of_every_kind__same_groups_as_python():
    (rows, *_), _ = _rows_both(_calls(500, seed=3), store_raw_user=False)
    odd = [
        rows[0]._replace(timestamp=datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)),
        # int() truncates -61.0 s to -61, then // 60 floors it to minute -2.
        rows[4]._replace(timestamp=datetime(1969, 12, 31, 23, 58, 59, tzinfo=UTC)),
        rows[1]._replace(timestamp=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        rows[2]._replace(timestamp=datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        rows[3]._replace(timestamp=datetime(2026, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=14)))),
    ]
    assert speedups is not None

    assert speedups.group_rows(rows + odd) == rollups.group_rows(rows + odd)


# --- copy_binary -----------------------------------------------------------------------


def _psycopg_bytes(rows: list[tuple[Any, ...]]) -> bytes:
    adapters = AdaptersMap(postgres.adapters)
    adapters.register_dumper(None, call_store._JsonTextDumper)
    transformer = Transformer(adapters)
    transformer.set_dumper_types([postgres.types[kind].oid for kind in COLUMN_TYPES], Format.BINARY)
    formatter = BinaryFormatter(transformer)
    chunks = [bytes(formatter.write_row(row)) for row in rows]
    return b"".join(chunks) + bytes(formatter.end())


def test_copy_binary__rows_of_every_kind__psycopgs_bytes():
    (rows, *_), _ = _rows_both(_calls(300, seed=5), store_raw_user=True)
    odd = rows[0]._replace(
        request_id="é-ü-😀",
        timestamp=datetime(
            1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3, minutes=-30))
        ),
        received_at=datetime(1, 1, 1, tzinfo=UTC),
        input_tokens=2**63 - 1,
        web_search_requests=-(2**31),
        latency_ms=2**31 - 1,
        server_tool_use='{"k": "é"}',
        iterations="[]",
        error_status=None,
    )
    assert speedups is not None

    assert speedups.copy_binary([*rows, odd], COPY_KINDS) == _psycopg_bytes([*rows, odd])
    assert speedups.copy_binary([], COPY_KINDS) == _psycopg_bytes([])


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        ("web_search_requests", 2**31, OverflowError),
        ("input_tokens", 2**63, OverflowError),
        ("input_tokens", "5", TypeError),
        ("attributed", 1, TypeError),
        ("timestamp", datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None), ValueError),  # naive
        ("model", b"bytes", TypeError),
    ],
)
def test_copy_binary__value_its_column_cannot_hold__raises(column, value, error):
    (rows, *_), _ = _rows_both(_calls(5, seed=1), store_raw_user=False)
    assert speedups is not None

    with pytest.raises(error):
        speedups.copy_binary([rows[0]._replace(**{column: value})], COPY_KINDS)


# --- the whole ingest, C and Python --------------------------------------------------------


def _stored() -> tuple[list[Any], ...]:
    calls = list(
        CallRecord.objects.order_by("request_id").values_list(
            *(name for name in CallRow._fields if name not in ("received_at",))
        )
    )
    rollup_rows = [
        {name: value for name, value in row.items() if name != "id"}
        for row in Rollup.objects.order_by("bucket", "arm", "model", "version").values()
    ]
    histograms = sorted(
        RollupHistogram.objects.values_list("rollup__arm", "rollup__model", "metric", "bucket", "n")
    )
    counts = sorted(RollupCount.objects.values_list("rollup__arm", "rollup__model", "kind", "key", "n"))
    return calls, rollup_rows, histograms, counts


def _batch() -> list[Raw]:
    rng = random.Random(5)
    records = []
    for index in range(300):
        record = make_record(
            request_id=f"r-{rng.randrange(250)}",
            timestamp=(NOW - timedelta(seconds=rng.randrange(200))).isoformat(),
            latency_ms=rng.choice((None, 12.5, 850)),
            user_id=rng.choice(("u1", "u2", 7)),
            stop_reason=rng.choice(("end_turn", "max_tokens", "odd", None)),
        )
        if index % 37 == 0:
            record["usage"]["output_tokens"] = -1
        if index % 41 == 0:
            record["sample"] = {"input": "hi", "output": "there"}
        if index % 43 == 0:
            record["usage"]["server_tool_use"] = {"web_search_requests": 2, "code_execution_requests": 1}
        records.append(record)
    split = split_batch(json.dumps({"records": records}).encode())
    assert split is not None
    return split


@pytest.mark.django_db
def test_ingest_calls__c_and_python__same_result_rows_and_rollups(monkeypatch):
    outcomes = []
    for use_c in (True, False):
        if not use_c:
            for module in (ingest, call_store, rollups):
                monkeypatch.setattr(module, "speedups", None)
        outcomes.append((ingest.ingest_calls(records=_batch(), received_at=NOW).as_dict(), _stored()))
        Rollup.objects.all().delete()
        CallRecord.objects.all().delete()

    assert outcomes[0] == outcomes[1]
    answer, (calls, rollup_rows, histograms, counts) = outcomes[0]
    assert answer["accepted"] == len(calls) > 100
    assert answer["duplicate"] > 0
    assert answer["rejected"]
    assert answer["samples_stored"] > 0
    assert rollup_rows
    assert histograms
    assert counts


# --- sort_rows -------------------------------------------------------------------------


def test_sort_rows__rows_of_every_kind__the_python_lock_order():
    (rows, *_), _ = _rows_both(_calls(500, seed=8), store_raw_user=False)
    rows += [rows[0]._replace(request_id="é"), rows[1]._replace(request_id="😀", environment_id=None)]
    expected = sorted(rows, key=call_store.lock_order)
    assert speedups is not None

    speedups.sort_rows(rows)

    assert rows == expected
    assert len({(row.request_id, row.environment_id) for row in rows[:50]}) == 50


# --- tally -----------------------------------------------------------------------------


def test_tally__groups_of_every_kind__same_figures_as_group_add():
    (rows, *_), _ = _rows_both(_calls(600, seed=9), store_raw_user=False)
    rows += [
        rows[0]._replace(latency_ms=2**17, ttft_ms=2**31 - 1),  # past the whole-ms table
        rows[1]._replace(stop_reason="model_context_window_exceeded", error_type="api_error"),
        rows[2]._replace(cost_micro_usd=2**63 - 1),
    ]
    assert speedups is not None
    for calls in rollups.group_rows(rows).values():
        python, c = rollups._Group(), rollups._Group()
        for _ in range(2):  # a group adds the calls of every batch it meets
            python.add(calls)
            speedups.tally(c, calls)

        assert (c.counters, c.cost_sq, c.histogram, c.counts) == (
            python.counters,
            python.cost_sq,
            python.histogram,
            python.counts,
        )


def test_tally__all_rows__every_figure_counted():
    (rows, *_), _ = _rows_both(_calls(300, seed=10), store_raw_user=False)
    group = rollups._Group()
    assert speedups is not None

    speedups.tally(group, rows)

    assert group.counters[rollups._CALLS] == len(rows)
    assert group.counts
    assert sum(n for (metric, _), n in group.histogram.items() if metric == rollups._LATENCY) == sum(
        row.latency_ms is not None for row in rows
    )
