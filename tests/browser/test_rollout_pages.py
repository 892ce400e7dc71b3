"""Issue 16's rollout flow in a real browser, in order, each person in a browser of their own
(their own cookies): an Editor creates a rollout on the rollouts page with a compressed plan, its
deploy checklist blocks the start, an Approver waives the red item with a reason, the Editor asks
to start (four eyes) and an Approver other than the author approves on the evidence shown. Then
real traffic drives it (tests/rollouts/live_traffic.py: the `flagstaff` client, the `anthropic`
SDK against the fake Anthropic server, telemetry through the API, live scoring, the analysis
tick) while the Editor's page stays open: its charts gain points, and when the analysis
promotes to the second stage the page reloads itself (its Controls then act on that stage), as
it does when the rollout is paused meanwhile, keeping a reason typed in it. Roll back then
returns the flag to its baseline, in the database, for the service's client and on the pages.
Screenshots at 1280 and 390 px go to test-artifacts/. (The Auditor's timeline and its export:
tests/browser/test_timeline.py.)"""

import json

import pytest
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from controlplane.audit import Actor
from controlplane.models import Role
from demo import scenario, seed
from demo.fake_anthropic import FakeAnthropic
from demo.traffic import Traffic
from flags import services as flag_services
from flags.models import Environment, FlagState, Split
from rollouts.models import Rollout, RolloutState
from rollouts.services import checklist, lifecycle
from rollouts.views import rollouts as rollout_views
from tests.browser.support import ARTIFACTS, PASSWORD, log_in, save_page, violations_on
from tests.browser.test_layout import check_page
from tests.factories import make_user
from tests.flags.serving_helpers import fresh_store
from tests.rollouts.live_traffic import MAX_ROUNDS, STAGES, fast_stream, run_round, traffic

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_store", "fast_stream"),
]
__all__ = ["fast_stream", "fresh_store", "traffic"]

ACTOR = Actor.system("tests")
CHARTS = 5  # pass rate, error rate, TTFT p95, total p95, cost per call
# The points the open page's charts show, over every chart and arm.
POINTS = (
    "Object.values(Chart.instances).reduce((n, chart) => n + chart.data.datasets.reduce("
    "(m, dataset) => m + dataset.data.filter((value) => value !== null).length, 0), 0)"
)


def _person(browser: Browser, url: str, username: str) -> tuple[Page, list[str]]:
    """A browser of one's own, logged in on `url`, and its CSP violations."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    violations = violations_on(page)
    log_in(page, url, username)
    return page, violations


def _screenshots(page: Page, name: str) -> None:
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        # Chart.js redraws a resized canvas on the next animation frame: shoot after it.
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        save_page(page, f"{name}-{width}")
        check_page(page, name, width)
        if width < 900:
            page.locator(".nav-toggle").click()  # check_page opened the menu: fold it again
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture
def production(fake_anthropic: FakeAnthropic) -> Environment:
    """Production serving v1 of the support chat; the budgets item required and unmet (the one red
    item); four eyes on starts."""
    production = flag_services.create_environment(
        key="production", name="Production", actor=ACTOR, protected=False
    )
    checklist.set_checklist_policy(environment=production, required=["budgets"], actor=ACTOR)
    flag_services.set_environment_requires_approval(environment=production, required=True, actor=ACTOR)
    seed.support_chat([production], actor=ACTOR, reason="browser flow")
    scenario.script(fake_anthropic)
    return production


def _create(author: Page) -> None:
    """The Editor's new rollout of the healthy candidate, on the compressed plan."""
    author.click("#new-rollout summary")
    author.select_option("#new-rollout select[name=flag]", scenario.FLAG)
    author.select_option("#new-rollout select[name=environment]", "production")
    author.fill("#new-rollout input[name=candidate]", str(scenario.HEALTHY_VERSION))
    author.fill("#new-rollout textarea[name=reason]", "canary of v3: same answers on Haiku")
    author.click("#rollout-plan > summary")
    author.fill("#id_tick_interval_seconds", "1")
    author.click("#rollout-plan-json > summary")
    author.fill("#id_stages", json.dumps(STAGES))
    author.fill("#id_policy", json.dumps(scenario.POLICY))
    author.locator("#new-rollout").screenshot(path=str(ARTIFACTS / "rollout-new-1280.png"))
    author.set_viewport_size({"width": 390, "height": 900})
    author.locator("#new-rollout").screenshot(path=str(ARTIFACTS / "rollout-new-390.png"))
    assert author.evaluate("document.documentElement.scrollWidth") <= 390
    author.set_viewport_size({"width": 1280, "height": 900})
    author.click("#new-rollout button[type=submit]")
    expect(author.locator(".messages")).to_contain_text("created")


def test_rollout__created_blocked_waived_approved__traffic_moves_the_open_page__rolled_back(
    live_server: LiveServer,
    browser: Browser,
    production: Environment,
    traffic: Traffic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rollout_views, "POLL_SECONDS", 1)
    editor = make_user(role=Role.EDITOR, username="editor@example.com", password=PASSWORD)
    make_user(role=Role.APPROVER, username="approver@example.com", password=PASSWORD)

    # The Editor creates the rollout; the checklist blocks its start.
    author, author_violations = _person(browser, f"{live_server.url}/rollouts/", "editor@example.com")
    _create(author)
    rollout = Rollout.objects.get()
    assert rollout.created_by_name == editor.get_username()
    assert list(rollout.stages.order_by("index").values_list("weight", flat=True)) == [1_000, 5_000, 10_000]
    url = f"{live_server.url}/rollouts/{rollout.pk}/"
    assert author.url == url
    expect(author.locator("#checklist")).to_contain_text("blocked")
    author.fill("#start-reason", "canary of v3")
    author.click("#checklist .start-form button")
    expect(author.locator("#checklist")).to_contain_text("Latency budget and daily cost budget set")
    rollout.refresh_from_db()
    assert rollout.state != RolloutState.RUNNING

    # An Approver waives the red item; the Editor asks to start; the Approver approves.
    approver, approver_violations = _person(browser, url, "approver@example.com")
    approver.fill("#waive-budgets", "FIN-12: budgets land next sprint")
    approver.click("#checklist form:has(#waive-budgets) button")
    expect(approver.locator("#checklist")).to_contain_text("Waived by")
    expect(approver.locator("#checklist")).to_contain_text("ready")
    author.reload()
    author.fill("#start-reason", "canary of v3")
    author.click("#checklist .start-form button")
    expect(author.locator("#checklist")).to_contain_text("Waiting for an Approver")
    rollout.refresh_from_db()
    assert rollout.split_id is None
    approver.goto(f"{live_server.url}/approvals/")
    approver.fill(".decide-form input[name=reason]", "checked the waiver and the gate")
    approver.click(".decide-form button[value=approve]")
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING

    # The Editor's page, still open since the start was asked for, finds the rollout running on
    # its next poll and reloads itself (a goto here would race that reload). Open from now on:
    # no traffic yet, so no charts.
    expect(author.locator("#control-pause")).to_be_visible(timeout=10_000)
    author.wait_for_load_state("load")
    assert author.url == url
    expect(author.locator("#stage-summary")).to_have_text("Stage 1 of 3: 10 % of units get v3.")
    expect(author.locator("#arm-charts")).to_contain_text("the charts appear with the first traffic")
    assert author.evaluate("() => window.Chart ? Object.keys(Chart.instances).length : 0") == 0
    author.evaluate("() => { window.renderedAtStage1 = true; }")  # a reload drops this mark

    # Real traffic until the analysis shows the candidate no worse and promotes it.
    for _ in range(MAX_ROUNDS):
        rollout = run_round(traffic, rollout)
        assert rollout.state == RolloutState.RUNNING, rollout.state
        if rollout.stage_index == 1:
            break
    else:
        raise AssertionError(f"rollout {rollout.pk} still at its first stage after {MAX_ROUNDS} rounds")

    expect(author.locator("#stage-summary")).to_have_text(
        "Stage 2 of 3: 50 % of units get v3.", timeout=10_000
    )
    expect(author.locator(".stage-step.stage-now")).to_contain_text("50 %")
    steps = [step.bounding_box() for step in author.locator(".stage-step").all()]
    assert len({round(box["y"]) for box in steps if box}) == 1, "the stage bar's steps are not in a row"
    expect(author.locator("#current-decision")).to_contain_text("shown non-inferior")
    author.wait_for_function(f"() => window.Chart && Object.keys(Chart.instances).length === {CHARTS}")
    author.wait_for_function(f"() => {POINTS} > 0", timeout=10_000)
    # The promotion reloaded the page, so that its Controls act on the new stage.
    assert author.evaluate("() => window.renderedAtStage1") is None
    expect(author.locator("#controls input[name=stage]")).to_have_value("1")
    _screenshots(author, "rollout-live")
    approver.goto(f"{live_server.url}/flags/{scenario.FLAG}/")
    expect(approver.locator("#users-get-production")).to_contain_text(
        "v1 to 50 %, v3 to 50 % (canary, stage 2 of 3)"
    )
    approver.goto(f"{live_server.url}/rollouts/")
    expect(approver.locator("#active")).to_contain_text("stage 2 of 3 · 50 %")

    # Paused from elsewhere (another person, or a tick's sample-ratio check): the open page sees
    # the new state on its next poll and reloads, so its Controls offer what a pause allows.
    # A reason being typed meanwhile is still there after the reload.
    author.fill("#id_rollback_reason", "rolling back as rehearsed")
    lifecycle.pause_rollout(rollout=rollout, actor=ACTOR, reason="checking the dashboards")
    expect(author.locator("#control-resume")).to_be_visible(timeout=10_000)
    expect(author.locator("#control-pause")).to_have_count(0)
    expect(author.locator("#id_rollback_reason")).to_have_value("rolling back as rehearsed")

    # One motion: the candidate leaves traffic; the page says so and stops polling.
    author.click("#rollback button")
    expect(author.locator(".messages")).to_contain_text("Rolled back: Stop serving v3")
    expect(author.locator("#rollout_live")).not_to_have_attribute("hx-trigger", "every 1s")
    expect(author.locator("#rollback")).to_contain_text("Nothing to roll back: this rollout is rolled back.")
    expect(author.locator("#rollback button")).to_have_count(0)
    drafts = author.evaluate("() => Object.keys(sessionStorage).filter((key) => key.startsWith('draft:'))")
    assert drafts == [], "the sent reason's draft was kept"
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert not Split.objects.active().exists()
    serving = FlagState.objects.filter(environment=production).values_list(
        "serving_version__number", flat=True
    )
    assert list(serving) == [scenario.BASELINE_VERSION]
    client = traffic.client
    assert client.wait_for_revision(Environment.objects.get(pk=production.pk).revision, timeout=10)
    served = {client.resolve(scenario.FLAG, {"targetingKey": f"user-{unit}"}).version for unit in range(200)}
    assert served == {scenario.BASELINE_VERSION}

    _screenshots(author, "rollout-rolled-back")
    approver.goto(f"{live_server.url}/flags/{scenario.FLAG}/")
    expect(approver.locator("#users-get-production")).to_contain_text("everyone → v1")
    approver.goto(f"{live_server.url}/rollouts/")
    expect(approver.locator("#active")).to_contain_text("No rollout or experiment is moving traffic now.")
    violations = author_violations + approver_violations
    assert violations == [], "\n".join(violations)
