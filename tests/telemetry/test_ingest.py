from __future__ import annotations

import importlib
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from django.apps import apps as django_apps
from django.db import connection, connections, transaction
from django.test import override_settings

from flags.models import ConfigVersion
from telemetry import histograms
from telemetry.models import CallRecord, Rollup, RollupCount, RollupHistogram, Sample
from telemetry.services import call_store
from telemetry.services import rollups as rollups_service
from telemetry.services.ingest import ingest_calls
from tests.factories import make_environment, make_version
from tests.telemetry.call_factories import at, flag_state_for, make_record, seed_prices

NOW = datetime(2026, 11, 25, 12, 30, 15, tzinfo=UTC)
CACHE = "records[0].usage.cache_creation"
TOOLS = "records[0].usage.server_tool_use"


@pytest.fixture
def prices(db):
    seed_prices()


@pytest.fixture
def served(db):
    """An environment and a version of a flag, as a resolution would name them."""
    environment = make_environment(key="production")
    version = make_version()
    return environment, version


def test_ingest_calls__valid_batch__stores_every_record(prices):
    records = [make_record(timestamp=at(NOW)) for _ in range(3)]

    result = ingest_calls(records=records, received_at=NOW)

    assert result.accepted == 3
    assert CallRecord.objects.count() == 3


def test_ingest_calls__stored_record__keeps_usage_and_timing(prices):
    record = make_record(
        timestamp=at(NOW),
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
            "service_tier": "priority",
            "inference_geo": "global",
        },
        session_id="sess-1",
        surface="chat",
    )

    ingest_calls(records=[record], received_at=NOW)

    stored = CallRecord.objects.get()
    assert (stored.input_tokens, stored.output_tokens, stored.cache_read_tokens) == (10, 20, 30)
    assert (stored.cache_write_5m_tokens, stored.cache_write_1h_tokens) == (3, 4)
    assert (stored.web_search_requests, stored.web_fetch_requests) == (2, 1)
    assert stored.server_tool_use == {"code_execution_requests": 5}
    assert (stored.service_tier, stored.inference_geo) == ("priority", "global")
    assert (stored.latency_ms, stored.ttft_ms) == (850, 210)
    assert (stored.session_id, stored.surface, stored.received_at) == ("sess-1", "chat", NOW)


@override_settings(FLAGSTAFF_TELEMETRY_STORE_RAW_USER_ID=True)
def test_ingest_calls__stored_record__keeps_every_column(prices, served):
    environment, version = served
    state = flag_state_for(environment, version, arm="canary", split_id="split-3")
    record = make_record(
        request_id="req-every",
        timestamp="2026-11-25T12:29:00+00:00",
        stop_reason="a_new_reason",
        usage={
            "input_tokens": 11,
            "output_tokens": 22,
            "cache_creation_input_tokens": 7,
            "cache_read_input_tokens": 33,
            "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4},
            "server_tool_use": {
                "web_search_requests": 5,
                "web_fetch_requests": 6,
                "code_execution_requests": 8,
            },
            "iterations": [{"type": "message", "input_tokens": 9}],
            "service_tier": "priority",
            "inference_geo": "us",
        },
        latency_ms=901.4,
        ttft_ms=77,
        flag_state=state,
        user_id="user-7",
        session_id="sess-8",
        surface="voice",
        error={"type": "api_error", "status": 500},
    )

    ingest_calls(records=[record], received_at=NOW)

    stored: dict[str, Any] = dict(CallRecord.objects.values().get())
    stored.pop("id")
    assert len(stored.pop("user_hash")) == 64
    cost = stored.pop("cost_micro_usd")
    assert cost is not None
    assert cost > 0
    assert stored == {
        "request_id": "req-every",
        "timestamp": datetime(2026, 11, 25, 12, 29, tzinfo=UTC),
        "received_at": NOW,
        "model": "claude-sonnet-5-5",
        "stop_reason": "a_new_reason",
        "stop_reason_known": False,
        "input_tokens": 11,
        "output_tokens": 22,
        "cache_write_5m_tokens": 3,
        "cache_write_1h_tokens": 4,
        "cache_read_tokens": 33,
        "web_search_requests": 5,
        "web_fetch_requests": 6,
        "server_tool_use": {"code_execution_requests": 8},
        "iterations": [{"type": "message", "input_tokens": 9}],
        "service_tier": "priority",
        "inference_geo": "us",
        "latency_ms": 901,
        "ttft_ms": 77,
        "flag_state": state,
        "environment_id": environment.id,
        "flag_id": version.flag_id,
        "version": version.number,
        "arm": "canary",
        "split_id": "split-3",
        "revision": environment.revision,
        "attributed": True,
        "user_id": "user-7",
        "session_id": "sess-8",
        "surface": "voice",
        "error_type": "api_error",
        "error_status": 500,
    }


def test_ingest_calls__cache_total_without_split__counts_as_5m_writes(prices):
    record = make_record(usage={"input_tokens": 1, "cache_creation_input_tokens": 500})

    ingest_calls(records=[record], received_at=NOW)

    stored = CallRecord.objects.get()
    assert (stored.cache_write_5m_tokens, stored.cache_write_1h_tokens) == (500, 0)


def test_ingest_calls__known_model__stores_cost_in_micro_usd(prices):
    # Sonnet 5.5 on 2026-11-25: 1000 x $2 + 200 x $10 + 3000 x $0.10 per MTok = 4300 micro-USD.
    ingest_calls(records=[make_record(timestamp=at(NOW))], received_at=NOW)

    assert CallRecord.objects.get().cost_micro_usd == 4300


def test_ingest_calls__unknown_model__stores_null_cost_and_counts_it(prices):
    result = ingest_calls(records=[make_record(model="claude-unknown-9")], received_at=NOW)

    assert result.unknown_cost == 1
    assert CallRecord.objects.get().cost_micro_usd is None
    assert Rollup.objects.get().cost_unknown_calls == 1


def test_ingest_calls__same_request_id_sent_again__acknowledged_as_duplicate(prices):
    record = make_record(timestamp=at(NOW))
    ingest_calls(records=[record], received_at=NOW)

    result = ingest_calls(records=[record, make_record(timestamp=at(NOW))], received_at=NOW)

    assert (result.accepted, result.duplicate) == (1, 1)
    assert CallRecord.objects.count() == 2


def test_ingest_calls__same_request_id_sent_again__counted_once_in_rollups(prices):
    record = make_record(timestamp=at(NOW))
    ingest_calls(records=[record], received_at=NOW)

    ingest_calls(records=[record], received_at=NOW)

    rollup = Rollup.objects.get()
    assert (rollup.calls, rollup.input_tokens, rollup.cost_micro_usd) == (1, 1000, 4300)
    assert sum(RollupHistogram.objects.filter(metric="latency").values_list("n", flat=True)) == 1


def test_ingest_calls__request_id_twice_in_one_batch__stored_once(prices):
    record = make_record(timestamp=at(NOW))

    result = ingest_calls(records=[record, dict(record)], received_at=NOW)

    assert (result.accepted, result.duplicate) == (1, 1)
    assert Rollup.objects.get().calls == 1


def test_ingest_calls__invalid_records__rejected_with_paths_and_valid_ones_stored(prices):
    records = [
        make_record(),
        make_record(usage={"input_tokens": 5, "output_tokens": -1}),
        {"model": "claude-sonnet-5-5"},
        "not an object",
    ]

    result = ingest_calls(records=records, received_at=NOW)

    assert result.accepted == 1
    assert result.rejected == [
        {
            "index": 1,
            "errors": [{"path": "records[1].usage.output_tokens", "message": "Must not be negative."}],
        },
        {
            "index": 2,
            "errors": [{"path": "records[2].request_id", "message": "Is required: the API's request id."}],
        },
        {"index": 3, "errors": [{"path": "records[3]", "message": "Must be an object."}]},
    ]
    assert CallRecord.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"model": ""}, "records[0].model"),
        ({"usage": {"input_tokens": 1.5}}, "records[0].usage.input_tokens"),
        ({"usage": {"input_tokens": True}}, "records[0].usage.input_tokens"),
        ({"usage": {"cache_creation": {"ephemeral_1h_input_tokens": -3}}}, f"{CACHE}.ephemeral_1h_input_tokens"),  # noqa: E501
        ({"usage": {"server_tool_use": {"web_search_requests": "2"}}}, f"{TOOLS}.web_search_requests"),
        ({"usage": []}, "records[0].usage"),
        ({"timestamp": "yesterday"}, "records[0].timestamp"),
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "records[0].timestamp"),
        ({"usage": {"output_tokens": 10**9 + 1}}, "records[0].usage.output_tokens"),
        ({"latency_ms": -1}, "records[0].latency_ms"),
        ({"ttft_ms": "fast"}, "records[0].ttft_ms"),
        ({"error": {"status": 529}}, "records[0].error.type"),
        ({"error": {"type": "overloaded_error", "status": "bad"}}, "records[0].error.status"),
        ({"stop_reason": 7}, "records[0].stop_reason"),
        ({"request_id": "r" * 201}, "records[0].request_id"),
        ({"session_id": "nul\x00byte"}, "records[0].session_id"),
        ({"usage": {"iterations": [{"type": "message", "note": "a\x00b"}]}}, "records[0].usage.iterations"),
    ],
)  # fmt: skip
def test_ingest_calls__bad_field__rejected_at_its_path(prices, overrides, path):
    result = ingest_calls(records=[make_record(**overrides)], received_at=NOW)

    assert result.accepted == 0
    assert [error["path"] for error in result.rejected[0]["errors"]] == [path]


def test_ingest_calls__timestamp_far_in_the_future__rejected(prices):
    record = make_record(timestamp=at(NOW + timedelta(minutes=6)))

    result = ingest_calls(records=[record], received_at=NOW)

    assert result.rejected[0]["errors"][0]["path"] == "records[0].timestamp"


def test_ingest_calls__timestamp_slightly_ahead__accepted(prices):
    record = make_record(timestamp=at(NOW + timedelta(minutes=4)))

    result = ingest_calls(records=[record], received_at=NOW)

    assert result.accepted == 1


def test_ingest_calls__no_timestamp__uses_the_time_of_receipt(prices):
    ingest_calls(records=[make_record()], received_at=NOW)

    assert CallRecord.objects.get().timestamp == NOW


def test_ingest_calls__timestamp_with_offset__stored_in_utc_minute_bucket(prices):
    ingest_calls(records=[make_record(timestamp="2026-11-25T14:30:59+02:00")], received_at=NOW)

    assert Rollup.objects.get().bucket == datetime(2026, 11, 25, 12, 30, tzinfo=UTC)


def test_ingest_calls__unknown_stop_reason__stored_and_flagged(prices):
    ingest_calls(records=[make_record(stop_reason="brand_new_reason")], received_at=NOW)

    stored = CallRecord.objects.get()
    assert (stored.stop_reason, stored.stop_reason_known) == ("brand_new_reason", False)


def test_ingest_calls__unknown_stop_reason__counted_as_other_in_rollup(prices):
    ingest_calls(records=[make_record(stop_reason="brand_new_reason")], received_at=NOW)

    assert Rollup.objects.get().stop_other == 1
    assert RollupCount.objects.get(kind="stop_reason").key == "brand_new_reason"


def test_ingest_calls__known_stop_reasons__counted_in_their_columns(prices):
    records = [
        make_record(stop_reason=reason) for reason in ("end_turn", "end_turn", "max_tokens", "refusal")
    ]

    ingest_calls(records=records, received_at=NOW)

    rollup = Rollup.objects.get()
    assert (rollup.stop_end_turn, rollup.stop_max_tokens, rollup.stop_refusal) == (2, 1, 1)


def test_ingest_calls__failed_calls__counted_by_error_type(prices):
    errors = [
        {"type": "overloaded_error", "status": 529},
        {"type": "overloaded_error", "status": 529},
        {"type": "rate_limit_error", "status": 429},
    ]
    records = [make_record(error=error, stop_reason=None, usage=None) for error in errors]

    ingest_calls(records=[*records, make_record()], received_at=NOW)

    rollup = Rollup.objects.get()
    assert (rollup.calls, rollup.errors, rollup.stop_none) == (4, 3, 3)
    assert dict(RollupCount.objects.filter(kind="error_type").values_list("key", "n")) == {
        "overloaded_error": 2,
        "rate_limit_error": 1,
    }


def test_ingest_calls__flag_state__attributes_environment_flag_version_and_arm(prices, served):
    environment, version = served
    token = flag_state_for(environment, version, arm="canary", split_id="split-7")

    result = ingest_calls(records=[make_record(flag_state=token)], received_at=NOW)

    stored = CallRecord.objects.get()
    assert result.unattributed == 0
    assert (stored.environment_id, stored.flag_id, stored.version) == (
        environment.pk,
        version.flag_id,
        version.number,
    )
    assert (stored.arm, stored.split_id, stored.revision, stored.attributed) == ("canary", "split-7", 0, True)


def test_ingest_calls__attributed_calls__rolled_up_per_version_and_arm(prices, served):
    environment, version = served
    records = [
        make_record(timestamp=at(NOW), flag_state=flag_state_for(environment, version, arm="canary")),
        make_record(timestamp=at(NOW), flag_state=flag_state_for(environment, version, arm="canary")),
        make_record(timestamp=at(NOW), flag_state=flag_state_for(environment, version, arm="control")),
    ]

    ingest_calls(records=records, received_at=NOW)

    counts = dict(
        Rollup.objects.filter(flag_id=version.flag_id, version=version.number).values_list("arm", "calls")
    )
    assert counts == {"canary": 2, "control": 1}


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "fs1:production:no-such-flag:1:-:-:0",
        "fs1:nowhere:{flag}:1:-:-:0",
        "fs1:production:{flag}:99:-:-:0",
        "fs1:production:{flag}:-3:-:-:0",
        "fs1:production:{flag}:99999999999:-:-:0",
        "fs1:production:{flag}:1:-:-:99999999999999999999",
    ],
)
def test_ingest_calls__unresolvable_flag_state__kept_unattributed_and_counted(prices, served, token):
    _, version = served

    result = ingest_calls(
        records=[make_record(flag_state=token.format(flag=version.flag.key))], received_at=NOW
    )

    assert (result.accepted, result.unattributed) == (1, 1)
    assert CallRecord.objects.get().attributed is False
    assert Rollup.objects.get().flag_id is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_ingest_calls__postgresql__rollup_and_attribution_statements_prepared_once(prices, served):
    environment, version = served
    token = flag_state_for(environment, version)

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY statement")
            return [row[0] for row in cursor.fetchall()]

    ingest_calls(records=[make_record(flag_state=token, timestamp=at(NOW))], received_at=NOW)
    after_first = prepared()
    ingest_calls(
        records=[make_record(flag_state=token, timestamp=at(NOW)) for _ in range(3)], received_at=NOW
    )

    assert prepared() == after_first  # the second batch ran the same statements again
    assert any(RollupHistogram._meta.db_table in statement for statement in after_first)
    assert any(ConfigVersion._meta.db_table in statement for statement in after_first)
    assert connection.connection.prepare_threshold is None  # Django's setting, for every other query


def test_ingest_calls__unattributed_calls__share_one_rollup_row(prices):
    records = [make_record(timestamp=at(NOW)) for _ in range(2)]
    ingest_calls(records=records[:1], received_at=NOW)

    ingest_calls(records=records[1:], received_at=NOW)

    assert Rollup.objects.get().calls == 2


def test_ingest_calls__calls_in_two_minutes__two_rollup_rows(prices):
    records = [make_record(timestamp=at(NOW)), make_record(timestamp=at(NOW + timedelta(minutes=1)))]

    ingest_calls(records=records, received_at=NOW + timedelta(minutes=2))

    assert Rollup.objects.count() == 2


def test_ingest_calls__rollup__sums_tokens_and_cost(prices):
    ingest_calls(records=[make_record(timestamp=at(NOW)) for _ in range(2)], received_at=NOW)

    rollup = Rollup.objects.get()
    assert (rollup.input_tokens, rollup.output_tokens, rollup.cache_read_tokens) == (2000, 400, 6000)
    assert rollup.cost_micro_usd == 8600


def _priced_records(count: int) -> list[dict]:
    """Calls of varied size (so of varied cost), all in NOW's minute."""
    return [
        make_record(
            timestamp=at(NOW),
            usage={"input_tokens": 97 * i + 13, "output_tokens": 31 * (i % 17), "cache_read_input_tokens": i},
        )
        for i in range(count)
    ]


def _stored_costs() -> list[int]:
    return [c for c in CallRecord.objects.values_list("cost_micro_usd", flat=True) if c is not None]


def _squares_of_stored_costs() -> int:
    return sum(c * c for c in _stored_costs())


def test_ingest_calls__rollup__sum_of_squared_costs_exact(prices):
    ingest_calls(
        records=[*_priced_records(50), make_record(model="claude-unknown-9", timestamp=at(NOW))],
        received_at=NOW,
    )

    rollup = Rollup.objects.get(model="claude-sonnet-5-5")
    assert rollup.cost_sq_micro_usd2 == _squares_of_stored_costs()
    assert rollup.cost_micro_usd == sum(_stored_costs())
    assert Rollup.objects.get(model="claude-unknown-9").cost_sq_micro_usd2 == 0  # no known cost


def test_ingest_calls__batches_resent_and_overlapping__sum_of_squared_costs_counts_each_call_once(prices):
    records = _priced_records(120)

    for batch in (records[:70], records[40:120], records, records[10:20]):
        ingest_calls(records=batch, received_at=NOW)

    rollup = Rollup.objects.get()
    assert rollup.calls == CallRecord.objects.count() == 120
    assert rollup.cost_sq_micro_usd2 == _squares_of_stored_costs()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite keeps integers up to 2^63 only")
def test_ingest_calls__squared_cost_beyond_64_bits__summed_exactly(prices):
    # A billion output tokens at $10 per MTok: $10,000 = 1e10 micro-USD, squared 1e20 > 2^64.
    huge = make_record(timestamp=at(NOW), usage={"input_tokens": 0, "output_tokens": 10**9})
    ingest_calls(records=[huge, *_priced_records(3)], received_at=NOW)
    ingest_calls(records=[huge], received_at=NOW)

    rollup = Rollup.objects.get()
    assert rollup.cost_sq_micro_usd2 == _squares_of_stored_costs() > 2**64


def test_cost_squares_backfill__rows_with_every_raw_call__exact_others_unknown(prices, served):
    environment, version = served
    token = flag_state_for(environment, version, arm="candidate")
    later = NOW + timedelta(minutes=1)
    attributed = [
        make_record(timestamp=at(NOW), flag_state=token, usage={"input_tokens": 10 * i}) for i in range(1, 4)
    ]
    pruned = [make_record(timestamp=at(later), usage={"input_tokens": 7 * i}) for i in range(1, 5)]
    unknown = make_record(timestamp=at(NOW), model="claude-unknown-9")
    ingest_calls(records=[*attributed, *pruned, unknown], received_at=later)
    attributed_squares = sum(
        c * c
        for c in CallRecord.objects.filter(attributed=True).values_list("cost_micro_usd", flat=True)
        if c
    )
    Rollup.objects.update(cost_sq_micro_usd2=0)  # as adding the column leaves the existing rows
    CallRecord.objects.filter(request_id=pruned[0]["request_id"]).delete()  # retention took one

    migration = importlib.import_module("telemetry.migrations.0005_rollup_cost_sum_of_squares")
    migration.backfill(django_apps, SimpleNamespace(connection=connection))

    assert Rollup.objects.get(flag__isnull=False).cost_sq_micro_usd2 == attributed_squares
    assert Rollup.objects.get(flag=None, model="claude-sonnet-5-5").cost_sq_micro_usd2 is None
    assert Rollup.objects.get(model="claude-unknown-9").cost_sq_micro_usd2 == 0


def test_ingest_calls__latencies__give_percentiles_within_the_bucket_width(prices):
    records = [make_record(timestamp=at(NOW), latency_ms=ms, ttft_ms=ms // 10) for ms in range(100, 1100)]

    ingest_calls(records=records, received_at=NOW)

    counts = dict(RollupHistogram.objects.filter(metric="latency").values_list("bucket", "n"))
    p95 = histograms.percentiles(counts, (0.95,))[0.95]
    assert p95 is not None
    assert abs(p95 - 1049) / 1049 < 0.05


def test_ingest_calls__bound_environment__rejects_records_of_other_environments(prices, served):
    environment, version = served
    other = make_environment(key="staging")
    records = [
        make_record(flag_state=flag_state_for(environment, version)),
        make_record(flag_state=flag_state_for(other, version)),
        make_record(),
        make_record(flag_state="garbage"),
    ]

    result = ingest_calls(records=records, bound_environment="production", received_at=NOW)

    assert result.accepted == 1
    assert [rejection["index"] for rejection in result.rejected] == [1, 2, 3]
    assert {rejection["errors"][0]["path"] for rejection in result.rejected} == {
        "records[1].flag_state",
        "records[2].flag_state",
        "records[3].flag_state",
    }


def test_ingest_calls__user_id__stored_as_hmac_only(prices):
    ingest_calls(records=[make_record(user_id="user-42")], received_at=NOW)

    stored = CallRecord.objects.get()
    assert len(stored.user_hash) == 64
    assert "user-42" not in stored.user_hash
    assert stored.user_id == ""


def test_ingest_calls__same_user__same_hash_across_batches(prices):
    ingest_calls(records=[make_record(user_id="user-42")], received_at=NOW)
    ingest_calls(records=[make_record(user_id="user-42")], received_at=NOW)

    assert CallRecord.objects.values("user_hash").distinct().count() == 1


@override_settings(FLAGSTAFF_TELEMETRY_STORE_RAW_USER_ID=True)
def test_ingest_calls__raw_user_ids_configured__stores_the_raw_id(prices):
    ingest_calls(records=[make_record(user_id="user-42")], received_at=NOW)

    assert CallRecord.objects.get().user_id == "user-42"


def test_ingest_calls__sample__stored_apart_from_the_call(prices):
    sample = {"input": [{"role": "user", "content": "hi"}], "output": [{"type": "text", "text": "hello"}]}

    result = ingest_calls(records=[make_record(sample=sample)], received_at=NOW)

    stored = Sample.objects.get()
    assert result.samples_stored == 1
    assert (stored.input, stored.output, stored.call) == (
        sample["input"],
        sample["output"],
        CallRecord.objects.get(),
    )


@override_settings(FLAGSTAFF_SAMPLE_MAX_BYTES=100)
def test_ingest_calls__sample_over_the_size_cap__dropped_and_call_kept(prices):
    result = ingest_calls(records=[make_record(sample={"input": "x" * 200, "output": "y"})], received_at=NOW)

    assert (result.accepted, result.samples_dropped) == (1, 1)
    assert not Sample.objects.exists()


def two_environments() -> tuple[str, str]:
    """flag_state tokens of one version served in staging and in production."""
    version = make_version()
    staging, production = make_environment(key="staging"), make_environment(key="production")
    return flag_state_for(staging, version), flag_state_for(production, version)


def test_ingest_calls__same_request_id_from_staging_and_production__both_stored(prices):
    staging, production = two_environments()
    ingest_calls(records=[make_record(request_id="req-1", flag_state=staging)], received_at=NOW)

    result = ingest_calls(records=[make_record(request_id="req-1", flag_state=production)], received_at=NOW)

    assert (result.accepted, result.duplicate) == (1, 0)
    keys = CallRecord.objects.values_list("request_id", "environment__key")
    assert sorted(keys) == [("req-1", "production"), ("req-1", "staging")]


def test_ingest_calls__same_request_id_for_two_environments_in_one_batch__both_stored(prices):
    staging, production = two_environments()
    records = [make_record(request_id="req-1", flag_state=state) for state in (staging, production)]

    result = ingest_calls(records=records, received_at=NOW)

    assert (result.accepted, result.duplicate) == (2, 0)


def test_ingest_calls__repeat_within_one_environment__duplicate(prices):
    staging, production = two_environments()
    ingest_calls(records=[make_record(request_id="req-1", flag_state=staging)], received_at=NOW)
    ingest_calls(records=[make_record(request_id="req-1", flag_state=production)], received_at=NOW)

    result = ingest_calls(records=[make_record(request_id="req-1", flag_state=production)], received_at=NOW)

    assert (result.accepted, result.duplicate) == (0, 1)
    assert CallRecord.objects.count() == 2


def test_ingest_calls__repeat_without_environment__duplicate(prices):
    ingest_calls(records=[make_record(request_id="req-1")], received_at=NOW)

    result = ingest_calls(records=[make_record(request_id="req-1")], received_at=NOW)

    assert (result.accepted, result.duplicate) == (0, 1)


def test_ingest_calls__same_request_id_in_two_environments__each_keeps_its_sample(prices):
    staging, production = two_environments()
    for state in (staging, production):
        record = make_record(request_id="req-1", flag_state=state, sample={"input": state, "output": "b"})
        ingest_calls(records=[record], received_at=NOW)

    samples = Sample.objects.values_list("call__environment__key", "input")
    assert sorted(key for key, _ in samples) == ["production", "staging"]


def test_ingest_calls__duplicate_with_sample__stores_the_sample_once(prices):
    record = make_record(sample={"input": "a", "output": "b"})
    ingest_calls(records=[record], received_at=NOW)

    ingest_calls(records=[record], received_at=NOW)

    assert Sample.objects.count() == 1


def test_ingest_calls__rollup_write_fails__nothing_is_stored(prices):
    with (
        mock.patch.object(rollups_service.RollupBatch, "write", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError),
    ):
        ingest_calls(records=[make_record(), make_record()], received_at=NOW)

    assert not CallRecord.objects.exists()


def test_ingest_calls__empty_batch__stores_nothing(prices):
    result = ingest_calls(records=[], received_at=NOW)

    assert result.as_dict()["accepted"] == 0
    assert not Rollup.objects.exists()


def test_ingest_calls__batch_sent_again__all_duplicates_and_rollups_unchanged(prices):
    batch = [make_record(timestamp=at(NOW), latency_ms=100 + i) for i in range(5)]
    ingest_calls(records=batch, received_at=NOW)

    with mock.patch.object(call_store, "_insert_staged", wraps=call_store._insert_staged) as staged:
        result = ingest_calls(records=batch, received_at=NOW)

    assert (result.accepted, result.duplicate, result.rejected) == (0, 5, [])
    rollup = Rollup.objects.get()
    assert (rollup.calls, rollup.input_tokens, CallRecord.objects.count()) == (5, 5000, 5)
    assert sum(RollupHistogram.objects.filter(metric="latency").values_list("n", flat=True)) == 5
    # PostgreSQL: the COPY met the stored rows and the batch went in by ON CONFLICT DO NOTHING.
    assert staged.called == (connection.vendor == "postgresql")


def test_ingest_calls__batch_partly_stored__new_ones_counted_once(prices):
    records = [make_record(timestamp=at(NOW)) for _ in range(9)]
    ingest_calls(records=records[::3], received_at=NOW)

    result = ingest_calls(records=records, received_at=NOW)

    assert (result.accepted, result.duplicate) == (6, 3)
    assert (CallRecord.objects.count(), Rollup.objects.get().calls) == (9, 9)
    assert set(CallRecord.objects.values_list("request_id", flat=True)) == {r["request_id"] for r in records}


def test_ingest_calls__duplicates_in_the_batch_and_stored__loss_check_exact(prices):
    stored = make_record(timestamp=at(NOW))
    ingest_calls(records=[stored], received_at=NOW)
    fresh = make_record(timestamp=at(NOW))
    records = [
        fresh,
        stored,
        dict(fresh),
        make_record(usage={"output_tokens": -1}),
        dict(stored),
        make_record(),
    ]

    result = ingest_calls(records=records, received_at=NOW)

    assert (result.accepted, result.duplicate, len(result.rejected)) == (2, 3, 1)
    assert result.accepted + result.duplicate + len(result.rejected) == len(records)
    assert CallRecord.objects.count() == 3
    assert sum(Rollup.objects.values_list("calls", flat=True)) == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
def test_ingest_calls__copy_of_an_id_stored_in_another_environment__both_stored(prices):
    staging, production = two_environments()
    ingest_calls(records=[make_record(request_id="req-1", flag_state=staging)], received_at=NOW)

    # The COPY itself (no fallback): the other environment's row must not violate the key.
    with mock.patch.object(call_store, "_insert_staged", side_effect=AssertionError("fell back")):
        result = ingest_calls(
            records=[make_record(request_id="req-1", flag_state=production)], received_at=NOW
        )

    assert result.accepted == 1
    assert CallRecord.objects.count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
def test_ingest_calls__stored_in_one_environment__copy_falls_back_and_keeps_the_other(prices):
    staging, production = two_environments()
    ingest_calls(records=[make_record(request_id="req-1", flag_state=staging)], received_at=NOW)
    records = [make_record(request_id="req-1", flag_state=state) for state in (staging, production)]

    with mock.patch.object(call_store, "_insert_staged", wraps=call_store._insert_staged) as staged:
        result = ingest_calls(records=records, received_at=NOW)

    assert staged.called
    assert (result.accepted, result.duplicate) == (1, 1)
    assert CallRecord.objects.count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_ingest_calls__outermost_batch_partly_stored__rolled_back_and_stored_by_the_staged_insert():
    """In its own transaction (as in a request) the COPY runs without a savepoint: meeting a
    stored call, the whole transaction is rolled back and the batch stored again, exactly."""
    seed_prices()
    records = [make_record(timestamp=at(NOW), latency_ms=100 + i) for i in range(9)]
    ingest_calls(records=records[::3], received_at=NOW)

    with (
        mock.patch.object(call_store, "_insert_staged", wraps=call_store._insert_staged) as staged,
        mock.patch.object(connections["default"], "savepoint", side_effect=AssertionError("a savepoint")),
    ):
        result = ingest_calls(records=records, received_at=NOW)

    assert staged.call_count == 1
    assert (result.accepted, result.duplicate) == (6, 3)
    rollup = Rollup.objects.get()
    assert (CallRecord.objects.count(), rollup.calls, rollup.input_tokens) == (9, 9, 9000)
    assert sum(RollupHistogram.objects.filter(metric="latency").values_list("n", flat=True)) == 9


def _blocked_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first_commits", [True, False], ids=["first commits", "first rolls back"])
def test_ingest_calls__same_batch_from_two_connections__each_record_counted_once(first_commits):
    """The second batch's COPY meets rows the first has inserted but not committed: it waits,
    then (first committed) falls back to ON CONFLICT and counts none, or (first rolled back)
    stores every row."""
    seed_prices()
    batch = [make_record(timestamp=at(NOW), latency_ms=100 + i) for i in range(50)]
    results = {}
    inserted, release = threading.Event(), threading.Event()

    def first():
        try:
            with transaction.atomic():
                results["first"] = ingest_calls(records=batch, received_at=NOW)
                inserted.set()
                assert release.wait(timeout=30)
                transaction.set_rollback(not first_commits)
        finally:
            connections.close_all()

    def second():
        try:
            assert inserted.wait(timeout=30)
            results["second"] = ingest_calls(records=list(reversed(batch)), received_at=NOW)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    waited = 0.0
    while not _blocked_on_a_lock() and waited < 10:
        time.sleep(0.05)
        waited += 0.05
    was_blocked = _blocked_on_a_lock()
    release.set()
    for thread in threads:
        thread.join()

    assert was_blocked
    second_counts = (results["second"].accepted, results["second"].duplicate)
    assert second_counts == ((0, 50) if first_commits else (50, 0))
    rollup = Rollup.objects.get()
    assert (CallRecord.objects.count(), rollup.calls, rollup.input_tokens) == (50, 50, 50_000)
    assert sum(RollupHistogram.objects.filter(metric="latency").values_list("n", flat=True)) == 50


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_ingest_calls__concurrent_overlapping_batches__rollups_count_each_record_once():
    seed_prices()
    records = [make_record(timestamp=at(NOW), latency_ms=100 + i) for i in range(600)]
    batches = [records[0:400], records[200:600], records[100:500], list(reversed(records[0:600]))]
    results = []
    barrier = threading.Barrier(len(batches))

    def send(batch):
        try:
            barrier.wait()
            results.append(ingest_calls(records=batch, received_at=NOW))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    rollup = Rollup.objects.get()
    assert sum(result.accepted for result in results) == 600
    assert sum(result.accepted + result.duplicate for result in results) == sum(len(b) for b in batches)
    assert (rollup.calls, rollup.input_tokens) == (600, 600 * 1000)
    assert rollup.cost_sq_micro_usd2 == 600 * 4300**2
    assert sum(RollupHistogram.objects.filter(metric="latency").values_list("n", flat=True)) == 600
    assert CallRecord.objects.count() == 600
