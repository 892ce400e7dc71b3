"""A publish to a protected environment in a real browser: it asks for a reason, which the audit
entry keeps."""

import pytest
from playwright.sync_api import expect

from controlplane.models import AuditEntry, Role
from flags.models import FlagState
from tests.browser.support import PASSWORD, log_in
from tests.factories import VALID_CONTENT, make_environment, make_flag, make_user, make_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_protected_publish__asks_for_a_reason__audit_entry_carries_it(live_server, page):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    make_environment(key="production", protected=True)
    flag = make_flag(key="support-chat")
    make_version(flag=flag, message="Sonnet")
    make_version(flag=flag, content={**VALID_CONTENT, "model": "claude-opus-5-5"}, message="Opus")
    log_in(page, f"{live_server.url}/flags/support-chat/", "owner@example.com")

    row = page.locator("tr", has=page.locator("td", has_text="production"))
    expect(row.locator(".badge", has_text="protected")).to_be_visible()
    row.locator("select[name=version]").select_option("2")
    row.locator("button", has_text="Publish").click()

    confirm = page.locator("#confirm-change")
    expect(confirm).to_contain_text("Publish v2 for support-chat in production")
    confirm.locator("textarea[name=reason]").fill("Opus passed the eval gate")
    confirm.locator("button", has_text="Confirm: Publish v2").click()

    expect(page.locator(".messages")).to_contain_text("'production' now serves v2.")
    serving = FlagState.objects.get(flag=flag).serving_version
    assert serving is not None
    assert serving.number == 2
    assert AuditEntry.objects.get(action="version.published").reason == "Opus passed the eval gate"
