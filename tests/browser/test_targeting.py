"""Targeting in a real browser: add a rule, try a context, set a 10 % split, see it on the flag page."""

import json

import pytest
from playwright.sync_api import expect

from controlplane.audit import Actor
from controlplane.models import Role
from flags import services
from flags.models import FlagState, Split
from tests.browser.support import ARTIFACTS, PASSWORD, log_in
from tests.factories import VALID_CONTENT, make_environment, make_flag, make_user, make_version

SYSTEM = Actor.system("tests")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def support_chat_serving_v1() -> None:
    """support-chat: v1 (Sonnet) enabled in production; v2 and v3 (Opus) written, not served."""
    environment = make_environment(key="production")
    flag = make_flag(key="support-chat", name="Support chat")
    make_version(flag=flag, message="Sonnet")
    make_version(flag=flag, content={**VALID_CONTENT, "model": "claude-opus-5-5"}, message="Opus for pro")
    make_version(flag=flag, content={**VALID_CONTENT, "model": "claude-opus-5-5", "max_tokens": 2048})
    services.publish_version(flag=flag, environment=environment, number=1, actor=SYSTEM)
    services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=SYSTEM)


def test_targeting__rule_try_and_split__shown_on_the_flag_page(live_server, page):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    support_chat_serving_v1()
    log_in(page, f"{live_server.url}/flags/support-chat/", "owner@example.com")
    page.click("nav.tabs >> text=Targeting")
    section = page.locator("#targeting-production")
    expect(section.locator("h2")).to_contain_text("Targeting in production")

    section.locator("summary", has_text="Add a rule").click()
    section.locator("input[name=context_name]").fill("plan")
    section.locator("select[name=operator]").select_option("IN")
    section.locator("input[name=values]").fill("pro, enterprise")
    section.locator("select[name=version]").select_option("2")
    section.locator("input[name=description]").fill("Paying customers")
    section.locator("button", has_text="Add rule").click()
    expect(section.locator(".message-success")).to_contain_text("Added a rule serving v2")
    expect(section.locator("table.rules")).to_contain_text("plan is one of pro, enterprise")

    try_panel = section.locator("#try-production")
    try_panel.locator("textarea[name=context]").fill(json.dumps({"targetingKey": "user-42", "plan": "pro"}))
    try_panel.locator("button", has_text="Try").click()
    result = page.locator("#try-production .try-result")
    expect(result).to_contain_text("TARGETING_MATCH")
    expect(result).to_contain_text("rule 1 matched (Paying customers)")
    expect(result).to_contain_text("v2 · claude-opus-5-5")

    section.locator("select[name=candidate]").select_option("3")
    section.locator("input[name=percent]").fill("10")
    section.locator("button", has_text="Set split").click()
    expect(section.locator(".message-success")).to_contain_text("v3 now serves 10 % of units")

    page.goto(f"{live_server.url}/flags/support-chat/#targeting")
    split_box = page.locator("#targeting-production .split-box")
    expect(split_box).to_contain_text("v3 serves 10 % of units (1000 bps)")
    expect(split_box).to_contain_text("control: next 10 %, served v1")
    expect(split_box.locator("button", has_text="Change split")).to_be_visible()

    try_panel = page.locator("#try-production")
    try_panel.locator("textarea[name=context]").fill(json.dumps({"targetingKey": "user-42", "plan": "free"}))
    try_panel.locator("button", has_text="Try").click()
    expect(page.locator("#try-production .try-result")).to_contain_text("SPLIT")
    expect(page.locator("#try-production .try-result")).to_contain_text("Bucket")

    page.locator("#targeting-production").screenshot(path=str(ARTIFACTS / "targeting.png"))

    split = Split.objects.active().get()
    assert split.candidate is not None
    assert (split.candidate.number, split.weight) == (3, 1000)
    assert FlagState.objects.get(flag__key="support-chat").rules == [
        {
            "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]}],
            "segments": [],
            "version": 2,
            "description": "Paying customers",
        }
    ]
