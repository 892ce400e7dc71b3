from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import time_machine
from pytest_django.fixtures import Settings

from controlplane.settings import env_secret
from demo.fake_anthropic import DEFAULT_ADMIN_KEY, FakeAnthropic, cost_result, report_bucket, usage_result
from telemetry import tasks
from telemetry.models.usage_sync import AdminSyncState, CostBucket, SyncHealth, UsageBucket
from telemetry.services import usage_sync

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TODAY = datetime(2026, 11, 25, tzinfo=UTC)
USAGE_DAY = ("usage", "1d")
COST_DAY = ("cost", "1d")
USAGE_PATH = "/v1/organizations/usage_report/messages"
COST_PATH = "/v1/organizations/cost_report"
MODEL = "claude-sonnet-5-5"


@pytest.fixture
def fake(fake_anthropic: FakeAnthropic, settings: Settings) -> FakeAnthropic:
    """The fake API with an Admin key configured and no pacing (each test sets its own)."""
    settings.ANTHROPIC_ADMIN_API_KEY = DEFAULT_ADMIN_KEY
    settings.ANTHROPIC_BASE_URL = fake_anthropic.base_url
    settings.FLAGSTAFF_ADMIN_SYNC_MIN_INTERVAL_SECONDS = 0
    settings.FLAGSTAFF_ADMIN_SYNC_BACKFILL_DAYS = 7
    return fake_anthropic


def usage_days(days: int, **fields: Any) -> list[dict[str, Any]]:
    """Daily usage buckets from `days` days ago up to today, each with one row per model."""
    grouped = {
        "model": MODEL,
        "workspace_id": "wrkspc_a",
        "api_key_id": "apikey_a",
        "service_tier": "standard",
        "context_window": "0-200k",
        "inference_geo": "global",
        "output_tokens": 100,
        "cache_read_input_tokens": 50,
        "cache_creation": {"ephemeral_5m_input_tokens": 7, "ephemeral_1h_input_tokens": 3},
        "server_tool_use": {"web_search_requests": 2},
    }
    return [
        report_bucket(
            TODAY - timedelta(days=back),
            [
                usage_result(**(grouped | {"uncached_input_tokens": 1000 + back} | fields)),
                usage_result(**({"model": "claude-opus-5-5", "output_tokens": 5} | fields)),
            ],
        )
        for back in range(days, -1, -1)
    ]


def step(now: datetime = NOW, streams: Any = (USAGE_DAY,)) -> usage_sync.StepResult:
    with time_machine.travel(now, tick=False):
        return usage_sync.sync_step(streams=streams)


def run_pass(now: datetime = NOW, streams: Any = (USAGE_DAY,)) -> list[usage_sync.StepResult]:
    with time_machine.travel(now, tick=False):
        return usage_sync.sync_until_idle(streams=streams)


def state(report: str = "usage", width: str = "1d") -> AdminSyncState:
    return AdminSyncState.objects.get(report=report, bucket_width=width)


def report_requests(fake: FakeAnthropic, path: str = USAGE_PATH) -> list[Any]:
    return [request for request in fake.requests if request.path == path]


# configuration


def test_sync_step__no_admin_key__unconfigured_and_no_request(
    fake: FakeAnthropic, settings: Settings
) -> None:
    settings.ANTHROPIC_ADMIN_API_KEY = ""

    result = step()

    assert (result.outcome, fake.requests) == ("unconfigured", [])


def test_env_secret__admin_key_file__read_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "admin_key"
    secret_file.write_text("sk-ant-admin01-from-a-file\n")
    monkeypatch.setenv("ANTHROPIC_ADMIN_API_KEY_FILE", str(secret_file))

    assert env_secret("ANTHROPIC_ADMIN_API_KEY") == "sk-ant-admin01-from-a-file"


# one pass


def test_sync_step__usage_day__request_shape_headers_and_grouping(fake: FakeAnthropic) -> None:
    fake.usage_buckets = usage_days(7)

    step()

    [request] = report_requests(fake)
    assert request.headers["x-api-key"] == DEFAULT_ADMIN_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.query["bucket_width"] == ["1d"]
    assert request.query["limit"] == ["31"]
    assert request.query["starting_at"] == ["2026-11-18T00:00:00Z"]
    assert request.query["ending_at"] == ["2026-11-26T00:00:00Z"]  # the open day is fetched too
    assert sorted(request.query["group_by[]"]) == sorted(
        ["model", "workspace_id", "api_key_id", "service_tier", "context_window", "inference_geo"]
    )


def test_sync_step__usage_day__rows_stored_with_dimensions_and_counters(fake: FakeAnthropic) -> None:
    fake.usage_buckets = usage_days(7)

    result = step()

    assert (result.outcome, result.rows, result.has_more) == ("fetched", 16, False)
    assert UsageBucket.objects.count() == 16
    row = UsageBucket.objects.get(starting_at=TODAY, model=MODEL)
    assert (row.bucket_width, row.workspace_id, row.api_key_id, row.service_tier) == (
        "1d",
        "wrkspc_a",
        "apikey_a",
        "standard",
    )
    assert (row.context_window, row.inference_geo, row.ending_at) == (
        "0-200k",
        "global",
        TODAY + timedelta(days=1),
    )
    assert (row.uncached_input_tokens, row.output_tokens, row.cache_read_input_tokens) == (1000, 100, 50)
    assert (
        row.cache_creation_5m_input_tokens,
        row.cache_creation_1h_input_tokens,
        row.web_search_requests,
    ) == (
        7,
        3,
        2,
    )
    ungrouped = UsageBucket.objects.get(starting_at=TODAY, model="claude-opus-5-5")
    assert (ungrouped.workspace_id, ungrouped.api_key_id) == ("", "")  # null: default workspace, Console


def test_sync_step__pass_complete__state_ok_with_success_and_next_run(fake: FakeAnthropic) -> None:
    fake.usage_buckets = usage_days(7)

    step()

    found = state()
    assert (found.health, found.cursor, found.last_status, found.last_error) == (SyncHealth.OK, "", 200, "")
    assert (found.last_success_at, found.synced_through) == (NOW, NOW)
    assert found.next_run_at == NOW + timedelta(hours=1)
    assert (found.pages_fetched, found.rows_stored) == (1, 16)


def test_sync_step__nothing_due__idle_and_no_request(fake: FakeAnthropic) -> None:
    fake.usage_buckets = usage_days(7)
    step()

    result = step(NOW + timedelta(minutes=10))

    assert (result.outcome, len(report_requests(fake))) == ("idle", 1)


def test_sync_step__cost_report__cents_become_usd_per_line_item(fake: FakeAnthropic) -> None:
    fake.cost_buckets = [
        report_bucket(
            TODAY - timedelta(days=1),
            [
                cost_result(
                    "123.45",
                    workspace_id="wrkspc_a",
                    description="Claude Sonnet 5.5 Usage - Input Tokens",
                    cost_type="tokens",
                    token_type="uncached_input_tokens",
                    model=MODEL,
                    service_tier="standard",
                    context_window="0-200k",
                    inference_geo="global",
                ),
                cost_result("0.5", workspace_id=None, description="Web Search Usage", cost_type="web_search"),
            ],
        )
    ]

    result = step(streams=(COST_DAY,))

    [request] = report_requests(fake, COST_PATH)
    assert sorted(request.query["group_by[]"]) == ["description", "workspace_id"]
    assert (result.outcome, result.rows) == ("fetched", 2)
    tokens = CostBucket.objects.get(cost_type="tokens")
    assert (tokens.date.isoformat(), tokens.amount_usd, tokens.model, tokens.token_type) == (
        "2026-11-24",
        Decimal("1.2345"),
        MODEL,
        "uncached_input_tokens",
    )
    search = CostBucket.objects.get(cost_type="web_search")
    assert (search.amount_usd, search.workspace_id, search.model) == (Decimal("0.005"), "", "")


def test_sync_step__minute_stream__first_pass_reaches_back_one_day_at_most(fake: FakeAnthropic) -> None:
    step(streams=(("usage", "1m"),))

    [request] = report_requests(fake)
    assert (request.query["bucket_width"], request.query["limit"]) == (["1m"], ["1440"])
    assert request.query["starting_at"] == ["2026-11-24T12:00:00Z"]
    assert request.query["ending_at"] == ["2026-11-25T12:01:00Z"]


def test_sync_step__next_pass__starts_a_lookback_before_the_last_one_ended(fake: FakeAnthropic) -> None:
    fake.usage_buckets = usage_days(7)
    step()

    step(NOW + timedelta(hours=2))

    second = report_requests(fake)[1]
    assert second.query["starting_at"] == ["2026-11-23T00:00:00Z"]  # two days back: data lands late


# pagination and resumption


def test_sync_until_idle__seventy_days__three_pages_followed_via_next_page(
    fake: FakeAnthropic, settings: Settings
) -> None:
    settings.FLAGSTAFF_ADMIN_SYNC_BACKFILL_DAYS = 70
    fake.usage_buckets = usage_days(70)

    results = run_pass()

    assert [(r.outcome, r.rows, r.has_more) for r in results] == [
        ("fetched", 62, True),
        ("fetched", 62, True),
        ("fetched", 18, False),
        ("idle", 0, False),
    ]
    first, second, third = report_requests(fake)
    assert "page" not in first.query
    assert second.query["page"] != third.query["page"]
    assert {r.query["starting_at"][0] for r in (first, second, third)} == {"2026-09-16T00:00:00Z"}
    assert UsageBucket.objects.count() == 142
    assert (state().pages_fetched, state().rows_stored, state().cursor) == (3, 142, "")


def test_sync_step__failure_mid_pagination__resumes_from_the_failed_page(
    fake: FakeAnthropic, settings: Settings
) -> None:
    settings.FLAGSTAFF_ADMIN_SYNC_BACKFILL_DAYS = 70
    fake.usage_buckets = usage_days(70)
    step()
    cursor = state().cursor
    fake.fail_next(500, path=USAGE_PATH)

    failed = step()

    assert (failed.outcome, failed.status) == ("failed", 500)
    broken = state()
    assert (broken.health, broken.cursor, broken.last_status) == (SyncHealth.FAILED, cursor, 500)
    assert "api_error" in broken.last_error
    assert broken.last_success_at is None

    results = run_pass(NOW + timedelta(minutes=5))

    assert [r.outcome for r in results] == ["fetched", "fetched", "idle"]
    resumed = report_requests(fake)[2]
    assert (resumed.query["page"], resumed.query["starting_at"]) == ([cursor], ["2026-09-16T00:00:00Z"])
    assert UsageBucket.objects.count() == 142
    assert (state().health, state().cursor, state().consecutive_failures) == (SyncHealth.OK, "", 0)


def test_sync_step__page_token_refused_on_resume__pass_restarts(
    fake: FakeAnthropic, settings: Settings
) -> None:
    settings.FLAGSTAFF_ADMIN_SYNC_BACKFILL_DAYS = 70
    fake.usage_buckets = usage_days(70)
    step()
    fake.fail_next(400, message="page: Invalid page token", path=USAGE_PATH)

    step()

    assert (state().cursor, state().health) == ("", SyncHealth.FAILED)
    assert "restarts" in state().last_error
    step()
    assert "page" not in report_requests(fake)[-1].query


# errors


def test_sync_step__429_with_retry_after__rate_limited_and_waits_that_long(fake: FakeAnthropic) -> None:
    fake.usage_buckets = usage_days(7)
    fake.fail_next(429, retry_after=30, path=USAGE_PATH)

    result = step()

    limited = state()
    assert (result.outcome, result.status) == ("failed", 429)
    assert (limited.health, limited.last_status) == (SyncHealth.RATE_LIMITED, 429)
    assert "retrying after 30 s" in limited.last_error
    assert set(AdminSyncState.objects.values_list("next_allowed_at", flat=True)) == {
        NOW + timedelta(seconds=30)
    }
    # The limit is the organisation's: the cost report, due meanwhile, waits too.
    assert step(NOW + timedelta(seconds=29), streams=(USAGE_DAY, COST_DAY)).outcome == "paced"
    assert len(fake.requests) == 1

    after = step(NOW + timedelta(seconds=31))

    assert (after.outcome, state().health, UsageBucket.objects.count()) == ("fetched", SyncHealth.OK, 16)


def test_sync_step__429_without_retry_after__waits_a_minute(fake: FakeAnthropic) -> None:
    fake.fail_next(429, path=USAGE_PATH)

    step()

    assert state().next_allowed_at == NOW + timedelta(seconds=60)


def test_sync_step__401__unauthorised_recorded_clearly(fake: FakeAnthropic, settings: Settings) -> None:
    settings.ANTHROPIC_ADMIN_API_KEY = "sk-ant-admin01-revoked"
    fake.usage_buckets = usage_days(7)

    result = step()

    refused = state()
    assert (result.outcome, result.status, refused.health, refused.last_status) == (
        "failed",
        401,
        SyncHealth.UNAUTHORISED,
        401,
    )
    assert refused.last_error.startswith("Unauthorised")
    assert "ANTHROPIC_ADMIN_API_KEY" in refused.last_error
    assert "sk-ant-admin01-revoked" not in refused.last_error
    assert UsageBucket.objects.count() == 0


def test_sync_step__server_down__failed_with_connection_error(
    fake: FakeAnthropic, settings: Settings
) -> None:
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"

    result = step()

    assert (result.outcome, result.status, state().health) == ("failed", None, SyncHealth.FAILED)
    assert state().last_error


def test_sync_step__failures__back_off_exponentially(fake: FakeAnthropic, settings: Settings) -> None:
    settings.FLAGSTAFF_ADMIN_SYNC_MIN_INTERVAL_SECONDS = 60
    fake.fail_next(500, times=2, path=USAGE_PATH)

    step()
    first_retry = state().next_run_at
    step(NOW + timedelta(minutes=3))

    assert first_retry == NOW + timedelta(minutes=2)
    assert state().next_run_at == NOW + timedelta(minutes=3) + timedelta(minutes=4)


# idempotency and pacing


def test_sync__rerun_over_the_same_window__no_duplicates_and_values_updated(fake: FakeAnthropic) -> None:
    fake.usage_buckets = usage_days(7)
    run_pass()
    fake.usage_buckets = usage_days(7, output_tokens=999)

    run_pass(NOW + timedelta(hours=1, minutes=1))

    assert UsageBucket.objects.count() == 16
    assert UsageBucket.objects.get(starting_at=TODAY, model=MODEL).output_tokens == 999


def test_sync__row_gone_from_the_report__removed_from_the_refetched_days(fake: FakeAnthropic) -> None:
    fake.usage_buckets = usage_days(7)
    run_pass()
    for bucket in fake.usage_buckets:
        bucket["results"] = bucket["results"][:1]

    run_pass(NOW + timedelta(hours=1, minutes=1))

    # The second pass re-fetches from two days back; older days keep what was fetched then.
    kept = UsageBucket.objects.filter(model="claude-opus-5-5").values_list("starting_at", flat=True)
    assert max(kept) == TODAY - timedelta(days=3)


def test_sync__same_page_stored_twice__idempotent(fake: FakeAnthropic) -> None:
    data = usage_days(1)

    usage_sync.store_usage_page(width="1d", data=data, synced_at=NOW)
    usage_sync.store_usage_page(width="1d", data=data, synced_at=NOW + timedelta(minutes=1))

    assert UsageBucket.objects.count() == 4


def test_sync_step__interval_60s__second_request_waits_a_minute(
    fake: FakeAnthropic, settings: Settings
) -> None:
    settings.FLAGSTAFF_ADMIN_SYNC_MIN_INTERVAL_SECONDS = 60
    fake.usage_buckets = usage_days(7)

    first = step(streams=(USAGE_DAY, COST_DAY))
    second = step(NOW + timedelta(seconds=59), streams=(USAGE_DAY, COST_DAY))
    third = step(NOW + timedelta(seconds=60), streams=(USAGE_DAY, COST_DAY))

    assert [first.outcome, second.outcome, third.outcome] == ["fetched", "paced", "fetched"]
    assert [r.path for r in fake.requests] == [USAGE_PATH, COST_PATH]


def test_sync_until_idle__all_streams__each_synced_once(fake: FakeAnthropic) -> None:
    fake.usage_buckets = usage_days(2)

    with time_machine.travel(NOW, tick=False):
        results = usage_sync.sync_until_idle()

    assert sorted((r.report, r.width) for r in results if r.outcome == "fetched") == [
        ("cost", "1d"),
        ("usage", "1d"),
        ("usage", "1h"),
        ("usage", "1m"),
    ]
    assert set(AdminSyncState.objects.values_list("health", flat=True)) == {SyncHealth.OK}


def test_sync_step__pass_under_way__continues_before_starting_another_stream(
    fake: FakeAnthropic, settings: Settings
) -> None:
    settings.FLAGSTAFF_ADMIN_SYNC_BACKFILL_DAYS = 70
    fake.usage_buckets = usage_days(70)
    step()

    result = step(streams=(USAGE_DAY, COST_DAY))

    assert (result.report, result.width) == USAGE_DAY


def test_sync_admin_reports_task__due_stream__fetches_one_page(fake: FakeAnthropic) -> None:
    with time_machine.travel(NOW, tick=False):
        outcome = tasks.sync_admin_reports()

    assert outcome["outcome"] == "fetched"
    assert len(fake.requests) == 1
