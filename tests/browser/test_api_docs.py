"""The API docs page in a real browser: an operation opened shows its request example, its
success answer's example and the error body of its refusals."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_api_docs__creating_a_version__shows_its_examples(live_server, page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/api/v1/docs/#/flags/flags_versions_create")

    operation = page.locator("#operations-flags-flags_versions_create")
    # The page loads the whole schema first (a few seconds on a busy machine); the deep link opens it.
    expect(operation.locator(".opblock-body")).to_be_visible(timeout=60_000)
    request = operation.locator(".opblock-section-request-body")
    expect(request).to_contain_text('"model": "claude-opus-5-5"')
    expect(request).to_contain_text("Hand refunds over $500 to a human.")
    answers = operation.locator(".responses-table")
    expect(answers.locator("tr.response[data-code='201']")).to_contain_text('"variant": "v8"')
    expect(answers.locator("tr.response[data-code='400']")).to_contain_text('"path": "content"')
    expect(answers.locator("tr.response[data-code='403']")).to_contain_text(
        "This action needs the 'write' scope"
    )
    operation.screenshot(path=str(ARTIFACTS / "api-docs-1280.png"))
