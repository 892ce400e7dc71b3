"""The flag's telemetry dashboard in a real browser: charts drawn, time range refreshed in place."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from controlplane.models import Role
from telemetry.services.ingest import ingest_calls
from tests.browser.support import PASSWORD, log_in, save_page
from tests.factories import make_environment, make_flag, make_user, make_version
from tests.telemetry.call_factories import at, flag_state_for, make_record, seed_prices

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# A 25 % split: the candidate, its control band of the same size, and the baseline.
ARMS = {0: "candidate", 1: "control", 2: "baseline", 3: "baseline"}


def test_flag_dashboard__in_a_browser__draws_charts_and_refreshes_the_range(live_server, page):
    seed_prices()
    environment = make_environment(key="production")
    flag = make_flag(key="support-chat", surface="chat")
    baseline, canary = make_version(flag=flag), make_version(flag=flag)
    now = timezone.now()
    records = [
        make_record(
            timestamp=at(now - timedelta(minutes=i % 50, days=i % 3)),
            flag_state=flag_state_for(
                environment, canary if i % 4 == 0 else baseline, arm=ARMS[i % 4], split_id="split-1"
            ),
            ttft_ms=300 + (i % 7) * 250,
            latency_ms=1500 + (i % 11) * 300,
            stop_reason="max_tokens" if i % 10 == 0 else "end_turn",
        )
        for i in range(120)
    ]
    ingest_calls(records=records)
    make_user(role=Role.VIEWER, username="reader@example.com", password=PASSWORD)

    log_in(page, f"{live_server.url}/login/?next=/telemetry/flags/support-chat/", "reader@example.com")

    expect(page.locator("h1")).to_contain_text("support-chat")
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 4")
    page.select_option("select[name=range]", "7d")
    expect(page).to_have_url(f"{live_server.url}/telemetry/flags/support-chat/?range=7d&environment=")
    page.wait_for_function("() => Object.keys(Chart.instances).length === 4")
    panel = page.locator("#candidate-vs-control")
    expect(panel).to_contain_text("v2 · candidate")
    expect(panel).to_contain_text("v1 · control")
    expect(panel.locator("tr", has_text="Calls")).to_contain_text("+0")
    expect(page.locator("table", has_text="All traffic")).to_contain_text("120")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        save_page(page, f"dashboard-data-{width}")
