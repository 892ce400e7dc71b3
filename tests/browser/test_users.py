"""Users and roles in a real browser: an Admin creates a user and makes them an Auditor, who
then reads and exports the audit log."""

import pytest
from playwright.sync_api import Page, expect

from controlplane.models import AuditEntry, Role
from tests.browser.support import PASSWORD, log_in, save_page
from tests.factories import make_flag, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_out(page: Page) -> None:
    toggle = page.locator(".nav-toggle")
    if toggle.is_visible():
        toggle.click()
    page.locator("button", has_text="Log out").click()


def test_users__admin_makes_an_auditor__who_reads_and_exports_the_audit_log(live_server, page):
    make_user(role=Role.ADMIN, username="admin@example.com", password=PASSWORD)
    make_flag(key="support-chat")
    log_in(page, f"{live_server.url}/login/?next=/users/", "admin@example.com")

    new_user = page.locator("#new-user")
    new_user.locator("input[name=email]").fill("dana@example.com")
    new_user.locator("input[name=password]").fill(PASSWORD)
    new_user.locator("button", has_text="Create user").click()
    expect(page.locator(".messages")).to_contain_text("Created dana@example.com.")
    role = page.locator("#user-role")
    role.locator("select[name=role]").select_option("auditor")
    role.locator("input[name=reason]").fill("joins the Q4 audit")
    role.locator("button", has_text="Save role").click()
    expect(page.locator(".messages")).to_contain_text("dana@example.com is now Auditor.")
    expect(page.locator("h1 + .meta")).to_contain_text("Auditor")
    page.goto(f"{live_server.url}/users/")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        save_page(page, f"users-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})
    log_out(page)

    log_in(page, f"{live_server.url}/login/?next=/audit/", "dana@example.com")
    results = page.locator("#audit_results")
    expect(results).to_contain_text("user.role_changed")
    expect(results).to_contain_text("joins the Q4 audit")
    with page.expect_download() as download_info:
        page.locator("a", has_text="CSV").first.click()
    exported = download_info.value.path().read_text()
    assert "user.role_changed" in exported
    assert "joins the Q4 audit" in exported
    entry = AuditEntry.objects.get(action="user.role_changed")
    assert (entry.actor_name, entry.reason) == ("admin@example.com", "joins the Q4 audit")
