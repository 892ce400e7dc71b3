"""Every page of the UI under the Content-Security-Policy, in a real browser: the header is sent
and Chromium reports no violation (an inline script, style or handler would be one); and the
behaviour moved out of inline handlers into static/js/app.js still works."""

from __future__ import annotations

from collections import deque
from urllib.parse import urldefrag, urlsplit

import pytest
from django.conf import settings
from playwright.sync_api import expect

from controlplane.models import Role
from tests.browser.support import PASSWORD, log_in, violations_on
from tests.factories import make_token, make_user
from tests.ui.test_every_link import one_of_everything

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
MOST_PAGES = 100


def test_every_page__under_the_policy__no_violation(live_server, page):
    one_of_everything()
    make_user(
        role=Role.ADMIN, username="admin@example.com", password=PASSWORD, is_staff=True, is_superuser=True
    )
    violations = violations_on(page)
    log_in(page, f"{live_server.url}/login/", "admin@example.com")

    # Every page reachable by links from the flag list, the API docs and the Django admin (its
    # index and lists; its forms are Django's). Inline handlers only violate the policy when they
    # run, which a crawl does not do: tests/ui/test_templates_csp.py reads the templates for them.
    queue = deque(["/flags/", "/api/v1/docs/", "/admin/"])
    seen = set(queue)
    visited = 0
    while queue and visited < MOST_PAGES:
        path = queue.popleft()
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None
        assert response.status == 200, path
        assert response.headers["content-security-policy"] == settings.FLAGSTAFF_CONTENT_SECURITY_POLICY, path
        page.wait_for_load_state("networkidle")
        visited += 1
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            link = urlsplit(urldefrag(href).url)
            target = link.path + (f"?{link.query}" if link.query else "")
            if (
                f"{link.scheme}://{link.netloc}" == live_server.url
                and target not in seen
                and not link.path.startswith(("/logout", "/api/", "/admin/logout", "/static/"))
                and not link.path.endswith(("/delete/", "/history/", "/change/", "/add/"))
            ):
                seen.add(target)
                queue.append(target)

    assert violations == []
    assert visited > 20


def test_token_revoke__confirm_dismissed__token_kept(live_server, page):
    make_user(role=Role.ADMIN, username="admin@example.com", password=PASSWORD)
    make_token(name="checkout-service", scopes=["resolve"])
    asked: list[str] = []

    def dismiss(dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    log_in(page, f"{live_server.url}/tokens/", "admin@example.com")
    page.click("button:has-text('Revoke')")

    assert asked == ["Revoke checkout-service? Services using it stop working."]
    expect(page.locator("button:has-text('Revoke')")).to_be_visible()


def test_usage__days_chosen__page_reloads_for_them(live_server, page):
    make_user(role=Role.ADMIN, username="admin@example.com", password=PASSWORD)
    log_in(page, f"{live_server.url}/usage/", "admin@example.com")

    page.select_option("#id_days", "7")

    expect(page).to_have_url(f"{live_server.url}/usage/?days=7")
