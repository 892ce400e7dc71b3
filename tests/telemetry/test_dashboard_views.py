from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from telemetry import dashboards
from telemetry.services.ingest import ingest_calls
from tests.factories import make_environment, make_flag, make_version
from tests.pages import logged_in
from tests.telemetry.call_factories import at, flag_state_for, make_record, seed_prices

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def traffic(db):
    """A typing-assist flag (TTFT budget 200 ms) with a baseline and a canary arm in production."""
    seed_prices()
    environment = make_environment(key="production")
    flag = make_flag(key="autocomplete", surface="typing_assist")
    baseline, canary = make_version(flag=flag), make_version(flag=flag)
    records = [
        make_record(
            timestamp=at(NOW - timedelta(minutes=5)),
            flag_state=flag_state_for(environment, baseline),
            ttft_ms=120,
        )
        for _ in range(8)
    ]
    records += [
        make_record(
            timestamp=at(NOW - timedelta(minutes=5)),
            flag_state=flag_state_for(environment, canary, arm="canary", split_id="split-1"),
            ttft_ms=450,
            stop_reason="max_tokens",
        ),
        make_record(
            timestamp=at(NOW - timedelta(minutes=4)),
            flag_state=flag_state_for(environment, canary, arm="canary", split_id="split-1"),
            error={"type": "overloaded_error", "status": 529},
            stop_reason=None,
            usage=None,
            ttft_ms=None,
        ),
    ]
    ingest_calls(records=records, received_at=NOW)
    return flag


def test_flag_dashboard__anonymous__redirected_to_login(client, traffic):
    response = client.get(reverse("telemetry:flag", args=[traffic.key]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_overview__anonymous__redirected_to_login(client, db):
    response = client.get(reverse("telemetry:overview"))

    assert response.status_code == 302


def test_flag_dashboard__unknown_flag__404(viewer):
    response = logged_in(viewer).get(reverse("telemetry:flag", args=["no-such-flag"]))

    assert response.status_code == 404


@time_machine.travel(NOW, tick=False)
def test_flag_dashboard__viewer__sees_each_version_and_arm(viewer, traffic):
    response = logged_in(viewer).get(reverse("telemetry:flag", args=[traffic.key]))

    dashboard = response.context["dashboard"]
    assert response.status_code == 200
    assert [(f.label, f.calls) for f in dashboard.arms] == [("v1", 8), ("v2 · canary", 2)]


@time_machine.travel(NOW, tick=False)
def test_flag_dashboard__canary_over_ttft_budget__shown_as_breach(viewer, traffic):
    response = logged_in(viewer).get(reverse("telemetry:flag", args=[traffic.key]))

    rows = {f.label: checks for f, checks in response.context["dashboard"].arm_rows}
    assert [check.breached for check in rows["v1"] if check.metric == "ttft"] == [False]
    assert [check.breached for check in rows["v2 · canary"] if check.metric == "ttft"] == [True]
    assert b"badge-red" in response.content


@time_machine.travel(NOW, tick=False)
def test_flag_dashboard__figures__error_rate_cache_hits_and_cost(viewer, traffic):
    response = logged_in(viewer).get(reverse("telemetry:flag", args=[traffic.key]))

    canary = response.context["dashboard"].arms[1]
    assert canary.error_rate == 0.5
    assert canary.error_types == {"overloaded_error": 1}
    assert canary.cache_hit_ratio == 0.75  # 3000 cached of 4000 prompt tokens
    assert canary.cost_per_call_usd == Decimal("0.00215")  # 0.0043 over two calls, one failed (no tokens)
    assert [reason for reason, _, _ in canary.stop_mix] == ["max_tokens", "none (failed)"]


@time_machine.travel(NOW, tick=False)
def test_flag_dashboard__charts__carry_daily_cost_and_budget_lines(viewer, traffic):
    response = logged_in(viewer).get(reverse("telemetry:flag", args=[traffic.key]))

    dashboard = response.context["dashboard"]
    assert dashboard.daily_cost["labels"][-1] == "2026-11-25"
    assert {dataset["label"] for dataset in dashboard.latency_chart["datasets"]} >= {"TTFT budget"}
    assert b'id="chart-daily-cost"' in response.content
    assert b"vendor/chart.umd.min.js" in response.content


@time_machine.travel(NOW + timedelta(days=3), tick=False)
def test_flag_dashboard__range_without_the_calls__shows_none(viewer, traffic):
    response = logged_in(viewer).get(reverse("telemetry:flag", args=[traffic.key]), {"range": "24h"})

    assert response.context["dashboard"].total.calls == 0
    assert b"No calls of this flag" in response.content


@time_machine.travel(NOW + timedelta(days=3), tick=False)
def test_flag_dashboard__seven_day_range__includes_older_calls(viewer, traffic):
    response = logged_in(viewer).get(reverse("telemetry:flag", args=[traffic.key]), {"range": "7d"})

    assert response.context["dashboard"].total.calls == 10


@time_machine.travel(NOW, tick=False)
def test_flag_dashboard__other_environment__filters_the_calls_out(viewer, traffic):
    make_environment(key="staging")

    response = logged_in(viewer).get(
        reverse("telemetry:flag", args=[traffic.key]), {"environment": "staging"}
    )

    assert response.context["dashboard"].total.calls == 0


@time_machine.travel(NOW, tick=False)
def test_flag_dashboard__htmx_range_change__renders_only_the_dashboard_block(viewer, traffic):
    response = logged_in(viewer).get(
        reverse("telemetry:flag", args=[traffic.key]),
        {"range": "1h"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="dashboard",
    )

    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b'id="chart-latency"' in response.content


@time_machine.travel(NOW, tick=False)
def test_overview__calls_of_a_flag_and_unattributed__one_row_each(viewer, traffic):
    ingest_calls(records=[make_record(timestamp=at(NOW))], received_at=NOW)

    response = logged_in(viewer).get(reverse("telemetry:overview"))

    rows = [(row.flag_key, row.figures.calls) for row in response.context["rows"]]
    assert rows == [("autocomplete", 10), (None, 1)]
    assert reverse("telemetry:flag", args=["autocomplete"]).encode() in response.content


def test_window__unknown_range__falls_back_to_24_hours():
    window = dashboards.Window.ending(NOW, "forever")

    assert (window.key, window.end - window.start) == ("24h", timedelta(hours=24))


def test_flag_detail__viewer__links_to_the_flag_dashboard(viewer, traffic):
    response = logged_in(viewer).get(reverse("flags:detail", args=[traffic.key]))

    assert reverse("telemetry:flag", args=[traffic.key]).encode() in response.content
