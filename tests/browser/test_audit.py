"""The audit page in a real browser: the chain's verdict arrives after the page has loaded."""

import pytest
from playwright.sync_api import expect

from controlplane.models import Role
from tests.browser.support import PASSWORD, log_in
from tests.factories import make_flag, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_audit_page__in_a_browser__shows_the_entries_then_the_verified_chain(live_server, page):
    make_flag(key="support-chat")
    make_flag(key="billing-bot")
    make_user(role=Role.AUDITOR, username="auditor@example.com", password=PASSWORD)

    log_in(page, f"{live_server.url}/login/?next=/audit/", "auditor@example.com")

    expect(page.locator("h1")).to_have_text("Audit log")
    expect(page.locator("#audit_results")).to_contain_text("flag billing-bot")
    status = page.locator("#chain-status")
    expect(status).to_have_class("chain chain-ok")
    expect(status).to_contain_text("All 2 entries link up and match their hashes.")
