"""The version editor's live checks in a real browser: a change that is not a keystroke (a
mouse paste) is checked too, and the panel never says "Valid" over text it has not checked."""

import json

import pytest
from playwright.sync_api import expect

from controlplane.models import Role
from tests.browser.support import PASSWORD, log_in
from tests.factories import VALID_CONTENT, make_flag, make_user, make_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What a paste does to the text without a key being pressed: the value changes, then "input".
PASTE = """(text) => {
  const editor = document.querySelector("textarea[name=content]");
  editor.value = text;
  editor.dispatchEvent(new Event("input", {bubbles: true}));
}"""


def test_editor__broken_config_pasted_with_the_mouse__checked_and_never_valid(live_server, page):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    make_version(flag=make_flag(key="support-chat"))
    log_in(page, f"{live_server.url}/flags/support-chat/versions/new/?from=1", "owner@example.com")
    panel = page.locator("#validation")
    expect(panel.locator(".check-title")).to_have_text("Valid")

    page.route("**/versions/new/", lambda route: page.wait_for_timeout(600) or route.continue_())
    page.evaluate(PASTE, '{"model": "claude-sonnet-5-5", "max_tokens": ')

    expect(panel).to_have_class("card check-panel check-stale")
    expect(panel.locator(".check-ok")).to_be_hidden()
    expect(panel.locator(".check-title")).to_have_text("Cannot read the config")
    expect(panel).not_to_have_class("card check-panel check-stale")

    page.evaluate(PASTE, json.dumps({**VALID_CONTENT, "max_tokens": 0}))
    expect(panel.locator(".check-title")).to_have_text("1 error")
    expect(panel).to_contain_text("max_tokens")
