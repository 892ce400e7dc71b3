from collections.abc import Iterator

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """One Playwright driver and one Chromium for every browser test: starting them costs seconds
    of CPU (Node.js loading the driver, then the browser), which per test added up to minutes a
    CI run; each test gets fresh contexts instead (`browser` closes them after it).

    Playwright's sync API keeps an event loop on this thread from here to the end of the package;
    the tests' own ORM calls are synchronous all the same, so Django's guard against ORM calls from
    async code is lifted for as long."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # the services pass's is a folder inside
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
                # While Playwright's loop runs, Django keeps database connections per context, not
                # per thread: once the loop stops they could no longer be reached and closed, and
                # on PostgreSQL an idle session then kept the test database from being dropped.
                connections.close_all()


@pytest.fixture
def browser(chromium: Browser) -> Iterator[Browser]:
    """The shared Chromium; every context the test opened (cookies, storage, pages) is closed
    after it, so that no test sees another's session."""
    yield chromium
    for context in chromium.contexts:
        context.close()


@pytest.fixture
def page(browser: Browser) -> Page:
    return browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
