"""Issue 16's rollout flow in a real browser, up to the start: an Editor creates a rollout on
the rollouts page, its deploy checklist blocks the start, an Approver waives the red item with a
reason, the Editor asks to start (four eyes), and an Approver other than the author approves on
the evidence shown; the rollout then serves its first stage. (The ticking, the live chart and
Roll back are tests/browser/test_rollout_pages.py.)"""

import pytest
from playwright.sync_api import Browser, Page, expect

from controlplane.models import Role
from flags import services as flag_services
from flags.models import Split
from rollouts.models import Rollout, RolloutState
from rollouts.services import checklist
from tests.browser.support import ARTIFACTS, PASSWORD, log_in, violations_on
from tests.factories import FACTORY_ACTOR, make_user
from tests.rollouts.factories import make_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _person(browser: Browser, url: str, username: str) -> tuple[Page, list[str]]:
    """A browser of one's own (its own cookies), logged in on `url`, and its CSP violations."""
    page = browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
    violations = violations_on(page)
    log_in(page, url, username)
    return page, violations


def test_rollout__blocked_by_the_checklist__waived_and_approved__starts(
    live_server, browser: Browser
) -> None:
    editor = make_user(role=Role.EDITOR, username="editor@example.com", password=PASSWORD)
    make_user(role=Role.APPROVER, username="approver@example.com", password=PASSWORD)
    world = make_world(key="support-chat")
    # Budgets are required here and none is set: the one red item. Four eyes on starts.
    checklist.set_checklist_policy(environment=world.environment, required=["budgets"], actor=FACTORY_ACTOR)
    flag_services.set_environment_requires_approval(
        environment=world.environment, required=True, actor=FACTORY_ACTOR
    )
    author, author_violations = _person(browser, f"{live_server.url}/rollouts/", "editor@example.com")
    author.click("#new-rollout summary")
    author.select_option("#new-rollout select[name=flag]", "support-chat")
    author.select_option("#new-rollout select[name=environment]", world.environment.key)
    author.fill("#new-rollout input[name=candidate]", "2")
    author.fill("#new-rollout textarea[name=reason]", "canary of v2")
    author.click("#new-rollout button[type=submit]")
    expect(author.locator(".messages")).to_contain_text("created")
    rollout = Rollout.objects.get(flag=world.flag)
    assert rollout.created_by_name == editor.get_username()
    url = f"{live_server.url}/rollouts/{rollout.pk}/"
    assert author.url == url
    expect(author.locator("#checklist")).to_contain_text("blocked")
    author.fill("#start-reason", "canary of v2")
    author.click("#checklist .start-form button")
    expect(author.locator("#checklist")).to_contain_text("Latency budget and daily cost budget set")
    rollout.refresh_from_db()
    assert rollout.state != RolloutState.RUNNING

    approver, approver_violations = _person(browser, url, "approver@example.com")
    approver.fill("#waive-budgets", "FIN-12: budgets land next sprint")
    approver.click("#checklist form:has(#waive-budgets) button")
    expect(approver.locator("#checklist")).to_contain_text("Waived by")
    expect(approver.locator("#checklist")).to_contain_text("ready")

    author.reload()
    author.fill("#start-reason", "canary of v2")
    author.click("#checklist .start-form button")
    expect(author.locator("#checklist")).to_contain_text("Waiting for an Approver")
    rollout.refresh_from_db()
    assert rollout.split_id is None

    approver.goto(f"{live_server.url}/approvals/")
    approver.fill(".decide-form input[name=reason]", "checked the waiver and the gate")
    approver.click(".decide-form button[value=approve]")
    approver.goto(url)
    expect(approver.locator("#stage-summary")).to_have_text("Stage 1 of 3: 1 % of units get v2.")
    ARTIFACTS.mkdir(exist_ok=True)
    approver.screenshot(path=str(ARTIFACTS / "rollout-checklist-started.png"), full_page=True)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING
    assert Split.objects.filter(flag=world.flag, candidate=world.candidate, cleared_at__isnull=True).exists()
    violations = author_violations + approver_violations
    assert violations == [], "\n".join(violations)
