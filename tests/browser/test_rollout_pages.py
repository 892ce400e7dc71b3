"""The rollout page in a real browser while its rollout ticks on a compressed schedule (the
test's clock): the stage bar and the charts change without a reload, Roll back takes the
candidate off traffic; screenshots at 1024 and 390 px go to test-artifacts/."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from controlplane.models import Role
from flags.models import Split
from rollouts.models import Rollout, Stage
from rollouts.services import ticks
from rollouts.views import rollouts as rollout_views
from telemetry.models.calls import Rollup
from tests.browser.support import ARTIFACTS, PASSWORD, log_in, violations_on
from tests.browser.test_layout import check_page
from tests.factories import make_user
from tests.rollouts.factories import add_calls, add_scores, make_running_rollout, make_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CHARTS = 5  # pass rate, error rate, TTFT p95, total p95, cost per call
# The candidate's highest error rate on the chart (the minute may have turned since the traffic).
ERROR_RATE = (
    "Math.max(...(Chart.getChart(document.querySelector('canvas[data-source=chart-error_rate]'))"
    "?.data.datasets[0].data.filter((value) => value !== null) || [-1]))"
)


def _traffic(rollout: Rollout) -> None:
    for arm in ("candidate", "control"):
        add_calls(rollout, arm=arm, calls=20_000, latency_ms=900)
        add_scores(rollout, arm=arm, n=20_000, passed=17_000)


def _screenshots(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (1024, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        check_page(page, name, width)
        if width < 900:
            page.locator(".nav-toggle").click()  # check_page opened the menu: fold it again
    page.set_viewport_size({"width": 1280, "height": 900})


def test_rollout_page__while_it_ticks__stage_bar_and_charts_update_without_a_reload(
    live_server, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollout_views, "POLL_SECONDS", 1)
    make_user(role=Role.EDITOR, username="editor@example.com", password=PASSWORD)
    world = make_world(key="support-chat")
    rollout = make_running_rollout(world)
    # The rollout began half an hour ago and has had a little traffic every few minutes since.
    now = timezone.now()
    Stage.objects.filter(rollout=rollout, index=0).update(started_at=now - timedelta(minutes=30))
    for minutes_ago in range(28, 2, -4):
        at = now - timedelta(minutes=minutes_ago)
        for arm, passed in (("candidate", 160 + minutes_ago), ("control", 170)):
            add_calls(
                rollout, arm=arm, calls=200, errors=minutes_ago % 3, at=at, latency_ms=700 + 10 * minutes_ago
            )
            add_scores(rollout, arm=arm, n=200, passed=passed, at=at)
    violations = violations_on(page)
    log_in(page, f"{live_server.url}/rollouts/{rollout.pk}/", "editor@example.com")
    expect(page.locator("#stage-summary")).to_have_text("Stage 1 of 3: 1 % of units get v2.")
    page.wait_for_function(f"() => window.Chart && Object.keys(Chart.instances).length === {CHARTS}")
    # A reload would drop this mark.
    page.evaluate("() => { window.stillTheSamePage = true; }")

    # Traffic comes in and the analysis tick promotes the canary to its second stage.
    _traffic(rollout)
    ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(minutes=2))

    expect(page.locator("#stage-summary")).to_have_text("Stage 2 of 3: 10 % of units get v2.", timeout=10_000)
    expect(page.locator(".stage-step.stage-now")).to_contain_text("10 %")
    expect(page.locator("#current-decision")).to_contain_text("all 2 acting guardrails shown non-inferior")
    page.wait_for_function(f"() => window.Chart && Object.keys(Chart.instances).length === {CHARTS}")
    assert page.evaluate(f"() => {ERROR_RATE}") < 2  # at most 2 of 200 calls in a minute so far
    _screenshots(page, "rollout")

    # The candidate starts failing calls (ingest adds them to the minute's rollup row): its
    # error-rate line rises on the open page.
    Rollup.objects.filter(flag=world.flag, arm="candidate", calls=20_000).update(errors=2_000)
    page.wait_for_function(f"() => {ERROR_RATE} > 4", timeout=10_000)
    assert page.evaluate("() => window.stillTheSamePage") is True
    page.goto(f"{live_server.url}/rollouts/")
    expect(page.locator("#active")).to_contain_text("stage 2 of 3 · 10 %")
    _screenshots(page, "rollouts-active")
    page.goto(f"{live_server.url}/rollouts/{rollout.pk}/")

    # One motion: the candidate leaves traffic, the page says so and stops polling.
    page.fill("#id_rollback_reason", "error rate climbing")
    page.click("#rollback button")
    expect(page.locator(".messages")).to_contain_text("Rolled back: Stop serving v2")
    expect(page.locator("#rollout_live")).not_to_have_attribute("hx-trigger", "every 1s")
    rollout.refresh_from_db()
    assert rollout.state == "rolled_back"
    assert not Split.objects.filter(flag=world.flag, cleared_at__isnull=True).exists()
    expect(page.locator("#rollback button")).to_be_disabled()
    _screenshots(page, "rollout-rolled-back")
    page.goto(f"{live_server.url}/rollouts/")
    expect(page.locator("#active")).to_contain_text("No rollout or experiment is moving traffic now.")
    assert violations == []
