"""The dashboard's comparisons: calls over time per arm, and the candidate against its control."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from flags.models import Environment, Flag
from telemetry import comparison, dashboards
from telemetry.services.ingest import ingest_calls
from tests.factories import make_environment, make_flag, make_version
from tests.telemetry.call_factories import at, flag_state_for, make_record, seed_prices

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def split_traffic() -> tuple[Flag, Environment]:
    """autocomplete (TTFT budget 200 ms): 30 candidate calls (one error, TTFT 300 ms) and 20
    control calls (TTFT 120 ms), ten minutes ago and two hours ago."""
    seed_prices()
    environment = make_environment(key="production")
    flag = make_flag(key="autocomplete", surface="typing_assist")
    published, candidate = make_version(flag=flag), make_version(flag=flag)
    records: list[dict[str, Any]] = []
    for index in range(30):
        records.append(
            make_record(
                timestamp=at(NOW - timedelta(minutes=10 if index % 2 else 120)),
                flag_state=flag_state_for(environment, candidate, arm="candidate", split_id="split-1"),
                ttft_ms=300,
                **(
                    {"error": {"type": "overloaded_error", "status": 529}, "stop_reason": None}
                    if index == 0
                    else {}
                ),
            )
        )
    for index in range(20):
        records.append(
            make_record(
                timestamp=at(NOW - timedelta(minutes=10 if index % 2 else 120)),
                flag_state=flag_state_for(environment, published, arm="control", split_id="split-1"),
                ttft_ms=120,
            )
        )
    ingest_calls(records=records)
    return flag, environment


def dashboard(flag: Flag, key: str) -> dashboards.FlagDashboard:
    return dashboards.flag_dashboard(flag, dashboards.Window.ending(NOW, key))


def test_calls_series__one_hour__per_minute_with_zeros_between(
    split_traffic: tuple[Flag, Environment],
) -> None:
    flag, _ = split_traffic
    board = dashboard(flag, "1h")

    series = comparison.calls_series(board.rollups, board.window)

    assert len(series["labels"]) == 60
    by_label = {dataset["label"]: dataset["data"] for dataset in series["datasets"]}
    assert sum(by_label["v2 · candidate"]) == 15
    assert sum(by_label["v1 · control"]) == 10
    assert by_label["v2 · candidate"][series["labels"].index("11:50")] == 15


def test_calls_series__a_day__per_hour(split_traffic: tuple[Flag, Environment]) -> None:
    flag, _ = split_traffic
    board = dashboard(flag, "24h")

    series = comparison.calls_series(board.rollups, board.window)

    by_label = {dataset["label"]: dataset["data"] for dataset in series["datasets"]}
    assert len(series["labels"]) == 25
    assert sum(by_label["v2 · candidate"]) == 30
    assert by_label["v2 · candidate"][series["labels"].index("11-25 10:00")] == 15


def test_candidate_vs_control__both_arms__differences_and_the_latency_budget(
    split_traffic: tuple[Flag, Environment],
) -> None:
    flag, _ = split_traffic
    board = dashboard(flag, "24h")

    panel = comparison.candidate_vs_control(board.arms, board.budgets)

    assert panel is not None
    rows = {row.label: row for row in panel.rows}
    assert (rows["Calls"].candidate, rows["Calls"].control, rows["Calls"].difference) == ("30", "20", "+10")
    assert (rows["Error rate"].candidate, rows["Error rate"].difference) == ("3.33 %", "+3.33 points")
    assert rows["TTFT p95"].verdict == "over budget"
    assert rows["Cost per call"].verdict == "no budget"


def test_candidate_vs_control__no_control_arm__none(split_traffic: tuple[Flag, Environment]) -> None:
    flag, _ = split_traffic
    board = dashboard(flag, "24h")

    assert (
        comparison.candidate_vs_control([arm for arm in board.arms if arm.arm != "control"], board.budgets)
        is None
    )


def test_flag_dashboard_page__split_traffic__panel_explanation_and_budgets_link(
    split_traffic: tuple[Flag, Environment], viewer: Any
) -> None:
    client = Client()
    client.force_login(viewer)

    body = client.get(reverse("telemetry:flag", args=["autocomplete"]), {"range": "30d"}).content.decode()

    assert 'id="candidate-vs-control"' in body
    assert "over budget" in body
    assert "Control: as many units again" in body
    assert f'href="{reverse("incidents:budgets", args=["autocomplete"])}"' in body
    assert 'id="chart-calls"' in body
