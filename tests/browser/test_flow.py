"""The product owner's path through the UI in a real browser: Debian's Chromium via Playwright."""

import json

import pytest
from playwright.sync_api import Page, expect

from controlplane.models import Role
from flags.models import ConfigVersion
from tests.browser.support import PASSWORD, log_in, save_page
from tests.factories import VALID_CONTENT, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def write_config(page: Page, content: dict[str, object]) -> None:
    """Replace the editor's text (in its text view; the page opens on the form) and release a
    key, as typing would, so live validation runs."""
    text_tab = page.get_by_role("tab", name="Text (JSON or YAML)")
    if text_tab.get_attribute("aria-selected") != "true":
        text_tab.click()
    editor = page.locator("textarea[name=content]")
    editor.fill(json.dumps(content, indent=2))
    editor.press("End")


def test_flow__two_versions_with_a_model_swap__diff_highlights_the_swap(live_server, page):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    validation = page.locator("#validation")

    log_in(page, f"{live_server.url}/flags/", "owner@example.com")
    expect(page.locator("h1")).to_have_text("Flags")

    page.fill("#new-flag input[name=key]", "support-chat")
    page.fill("#new-flag input[name=name]", "Support chat")
    page.select_option("#new-flag select[name=surface]", "chat")
    page.click("#new-flag button:has-text('Create flag')")
    page.click("nav.tabs >> text=Versions")
    page.click("text=Write the first version")

    write_config(page, {**VALID_CONTENT, "system": "Answer briefly."})
    expect(validation).to_contain_text("Valid")
    page.fill("input[name=message]", "First config")
    page.click("button:has-text('Save version')")
    expect(page.locator("h1")).to_contain_text("v1")

    page.click("text=New version from this")
    write_config(page, {**VALID_CONTENT, "model": "claude-opus-5-55", "system": "Answer briefly."})
    expect(validation.locator("code.path", has_text="model")).to_be_visible()
    write_config(page, {**VALID_CONTENT, "model": "claude-opus-5-5", "system": "Answer briefly."})
    expect(validation).to_contain_text("Valid")
    page.fill("input[name=message]", "Opus for harder questions")
    page.click("button:has-text('Save version')")
    expect(page.locator("h1")).to_contain_text("v2")

    page.click("text=Compare with v1")
    swap = page.locator("#model-swap")
    expect(swap).to_be_visible()
    expect(swap.locator(".model-old .model-id")).to_have_text("claude-sonnet-5-5")
    expect(swap.locator(".model-new .model-id")).to_have_text("claude-opus-5-5")
    expect(page.locator(".kind-model_swap")).to_have_text("Model swap")
    save_page(page, "diff")

    assert list(ConfigVersion.objects.order_by("number").values_list("content__model", flat=True)) == [
        "claude-sonnet-5-5",
        "claude-opus-5-5",
    ]


def test_flow__live_search__replaces_only_the_results(live_server, page):
    make_user(role=Role.VIEWER, username="reader@example.com", password=PASSWORD)
    log_in(page, f"{live_server.url}/login/", "reader@example.com")

    page.fill("input[name=q]", "no-such-flag")

    expect(page.locator("#flag_results")).to_contain_text("No flags match")
    expect(page).to_have_url(f"{live_server.url}/flags/?q=no-such-flag")
    expect(page.locator("input[name=q]")).to_be_focused()
