from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from demo.fake_anthropic import DEFAULT_ADMIN_KEY, FakeAnthropic, cost_result, report_bucket
from telemetry.reconciliation import reconcile
from telemetry.services import usage_sync
from telemetry.services.ingest import ingest_calls
from tests.pages import logged_in
from tests.telemetry.call_factories import at, make_record, seed_prices

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
YESTERDAY = date(2026, 11, 24)
URL = "/usage/"
MODEL = "claude-sonnet-5-5"


# the pure reconciliation


def test_reconcile__gap_within_threshold__not_flagged() -> None:
    [row] = reconcile(
        {(YESTERDAY, MODEL): Decimal("1.04")},
        {(YESTERDAY, MODEL): Decimal("1.00")},
        threshold_percent=Decimal(5),
    )

    assert (row.gap_usd, row.gap_percent, row.flagged) == (Decimal("0.04"), Decimal("4.0"), False)


def test_reconcile__gap_above_threshold__flagged_either_way() -> None:
    rows = reconcile(
        {(YESTERDAY, MODEL): Decimal("0.90"), (YESTERDAY, "claude-opus-5-5"): Decimal("1.10")},
        {(YESTERDAY, MODEL): Decimal("1.00"), (YESTERDAY, "claude-opus-5-5"): Decimal("1.00")},
        threshold_percent=Decimal(5),
    )

    assert [(row.model, row.gap_percent, row.flagged) for row in rows] == [
        ("claude-opus-5-5", Decimal("10.0"), True),
        (MODEL, Decimal("10.0"), True),
    ]


def test_reconcile__only_one_side_has_cost__flagged_without_percent() -> None:
    rows = reconcile(
        {(YESTERDAY, MODEL): Decimal("1")}, {(YESTERDAY, ""): Decimal("0.2")}, threshold_percent=Decimal(5)
    )

    assert [(row.model, row.gap_percent, row.flagged) for row in rows] == [
        ("", Decimal("100.0"), True),
        (MODEL, None, True),
    ]


def test_reconcile__days__newest_first_and_empty_pairs_dropped() -> None:
    earlier = YESTERDAY - timedelta(days=1)
    rows = reconcile(
        {(earlier, MODEL): Decimal(1), (YESTERDAY, MODEL): Decimal(0)},
        {(earlier, MODEL): Decimal(1), (YESTERDAY, MODEL): Decimal(0), (YESTERDAY, "x"): Decimal(2)},
        threshold_percent=Decimal(5),
    )

    assert [(row.day, row.model) for row in rows] == [(YESTERDAY, "x"), (earlier, MODEL)]


# the page


@pytest.fixture
def fake(fake_anthropic: FakeAnthropic, settings: Settings) -> FakeAnthropic:
    settings.ANTHROPIC_ADMIN_API_KEY = DEFAULT_ADMIN_KEY
    settings.ANTHROPIC_BASE_URL = fake_anthropic.base_url
    settings.FLAGSTAFF_ADMIN_SYNC_MIN_INTERVAL_SECONDS = 0
    return fake_anthropic


def page(client: Client, **params: Any) -> Any:
    with time_machine.travel(NOW, tick=False):
        return client.get(URL, params)


def sync_once(streams: Any = (("cost", "1d"),)) -> None:
    with time_machine.travel(NOW, tick=False):
        usage_sync.sync_step(streams=streams)


def costs(*rows: tuple[str, str, str | None]) -> list[dict[str, Any]]:
    """Yesterday's cost rows (cents, model, workspace)."""
    return [
        report_bucket(
            datetime(2026, 11, 24, tzinfo=UTC),
            [
                cost_result(
                    cents,
                    model=model,
                    workspace_id=workspace,
                    description=f"{model} usage",
                    cost_type="tokens",
                )
                for cents, model, workspace in rows
            ],
        )
    ]


def our_calls(count: int, *, service_tier: str = "standard") -> None:
    seed_prices()
    moment = NOW - timedelta(days=1)
    records = [
        make_record(
            timestamp=at(moment),
            usage={
                "input_tokens": 1000,
                "output_tokens": 200,
                "cache_read_input_tokens": 3000,
                "service_tier": service_tier,
            },
        )
        for _ in range(count)
    ]
    with time_machine.travel(moment, tick=False):
        ingest_calls(records=records)


def test_usage_page__anonymous__redirected_to_login(client: Client) -> None:
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_usage_page__no_admin_key__says_not_configured(viewer: User, settings: Settings) -> None:
    settings.ANTHROPIC_ADMIN_API_KEY = ""

    response = page(logged_in(viewer))

    assert response.status_code == 200
    assert response.context["health"] == "unconfigured"
    assert b"Not configured" in response.content
    assert b"ANTHROPIC_ADMIN_API_KEY_FILE" in response.content


def test_usage_page__configured_never_run__waiting(viewer: User, fake: FakeAnthropic) -> None:
    response = page(logged_in(viewer))

    assert response.context["health"] == "never"
    assert b"Waiting for the first sync" in response.content


def test_usage_page__key_refused__says_unauthorised_401(
    viewer: User, fake: FakeAnthropic, settings: Settings
) -> None:
    settings.ANTHROPIC_ADMIN_API_KEY = "sk-ant-admin01-revoked"
    sync_once()

    response = page(logged_in(viewer))

    assert response.context["health"] == "unauthorised"
    assert b"unauthorised (401)" in response.content
    assert b"Unauthorised: the Admin API refused the key" in response.content


def test_usage_page__rate_limited__says_429(viewer: User, fake: FakeAnthropic) -> None:
    fake.fail_next(429, retry_after=120)
    sync_once()

    response = page(logged_in(viewer))

    assert response.context["health"] == "rate_limited"
    assert b"Rate limited (429)" in response.content


def test_usage_page__failing__says_failing_with_last_error(viewer: User, fake: FakeAnthropic) -> None:
    fake.fail_next(500)
    sync_once()

    response = page(logged_in(viewer))

    assert response.context["health"] == "failed"
    assert b"api_error" in response.content


def test_usage_page__synced__spend_by_model_and_workspace(viewer: User, fake: FakeAnthropic) -> None:
    fake.cost_buckets = costs(
        ("1000", MODEL, "wrkspc_a"), ("500", "claude-opus-5-5", "wrkspc_a"), ("250", MODEL, None)
    )
    sync_once()

    response = page(logged_in(viewer))

    by_model = {row["model"]: row["total"] for row in response.context["spend_by_model"]}
    by_workspace = {row["workspace_id"]: row["total"] for row in response.context["spend_by_workspace"]}
    assert by_model == {MODEL: Decimal("12.50"), "claude-opus-5-5": Decimal("5.00")}
    assert by_workspace == {"wrkspc_a": Decimal("15.00"), "": Decimal("2.50")}
    assert response.context["spend_total"] == Decimal("17.50")
    assert b"(default workspace)" in response.content


def test_usage_page__always__notes_priority_tier_is_not_in_the_cost_report(viewer: User) -> None:
    response = page(logged_in(viewer))

    assert b"Priority Tier costs never appear in the cost report" in response.content


def test_usage_page__our_cost_matches_report__not_flagged(viewer: User, fake: FakeAnthropic) -> None:
    our_calls(10)  # 10 x $0.0043
    fake.cost_buckets = costs(("4.30", MODEL, "wrkspc_a"))
    sync_once()

    response = page(logged_in(viewer))

    [row] = response.context["reconciliation"]
    assert (row.day, row.model, row.ours_usd, row.theirs_usd, row.flagged) == (
        YESTERDAY,
        MODEL,
        Decimal("0.043"),
        Decimal("0.043"),
        False,
    )


def test_usage_page__gap_above_threshold__flagged(viewer: User, fake: FakeAnthropic) -> None:
    our_calls(10)
    fake.cost_buckets = costs(("4.00", MODEL, "wrkspc_a"))  # $0.040 reported vs $0.043 ours: 7.5 %
    sync_once()

    response = page(logged_in(viewer))

    [row] = response.context["reconciliation"]
    assert (row.gap_percent, row.flagged, response.context["flagged"]) == (Decimal("7.5"), True, 1)
    assert b'badge-red">gap' in response.content


def test_usage_page__threshold_setting_raised__same_gap_not_flagged(
    viewer: User, fake: FakeAnthropic, settings: Settings
) -> None:
    settings.FLAGSTAFF_RECONCILIATION_THRESHOLD_PERCENT = 10
    our_calls(10)
    fake.cost_buckets = costs(("4.00", MODEL, "wrkspc_a"))
    sync_once()

    [row] = page(logged_in(viewer)).context["reconciliation"]

    assert row.flagged is False


def test_usage_page__priority_tier_calls__left_out_of_our_side(viewer: User, fake: FakeAnthropic) -> None:
    our_calls(10)
    our_calls(5, service_tier="priority")
    fake.cost_buckets = costs(("4.30", MODEL, "wrkspc_a"))
    sync_once()

    [row] = page(logged_in(viewer)).context["reconciliation"]

    assert (row.ours_usd, row.flagged) == (Decimal("0.043"), False)


def test_usage_page__today__left_out_of_the_reconciliation(viewer: User, fake: FakeAnthropic) -> None:
    seed_prices()
    with time_machine.travel(NOW, tick=False):
        ingest_calls(records=[make_record(timestamp=at(NOW - timedelta(hours=1)))])

    assert page(logged_in(viewer)).context["reconciliation"] == []
