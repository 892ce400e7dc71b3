"""The deprecations page in a real browser: a model a flag serves, deprecated upstream, shows its
runway in words and where it is used. Screenshots at 1280 and 390 px go to test-artifacts/."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from controlplane.models import Role
from flags.catalog import seed_catalog
from tests.browser.support import PASSWORD, log_in, save_page
from tests.deprecations.factories import serve, set_lifecycle
from tests.factories import make_environment, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_deprecations_page__deprecated_model_served__runway_and_exposures(live_server, page: Page) -> None:
    seed_catalog()  # a transactional test starts from an empty database
    make_user(role=Role.VIEWER, username="owner@example.com", password=PASSWORD)
    production = make_environment(key="production")
    serve("claude-opus-5", environment=production, key="support-chat")
    retires = timezone.now().date() + timedelta(days=12)
    set_lifecycle("claude-opus-5", "deprecated", retires)

    log_in(page, f"{live_server.url}/deprecations/", "owner@example.com")

    card = page.locator("#model-claude-opus-5")
    expect(card.locator("h2")).to_have_text("claude-opus-5")
    expect(card.locator(".deprecation-runway")).to_contain_text(
        f"claude-opus-5 retires in 12 days ({retires.isoformat()}): 12 days left."
    )
    expect(card.locator(".badge", has_text="medium")).to_be_visible()
    row = card.locator(".exposures-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("support-chat")
    expect(row).to_contain_text("production")
    expect(row).to_contain_text("serving version")
    expect(row.locator(".badge")).to_have_text("yes")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        save_page(page, f"deprecations-{width}")
