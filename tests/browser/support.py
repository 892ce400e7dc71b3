"""What the browser tests share besides fixtures: where Chromium is, where screenshots go (and
what every screenshot's page is checked for), logging in, and listening for
Content-Security-Policy violations."""

import os
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page

CHROMIUM = "/usr/bin/chromium"
# Headless, and none of Chromium's own network traffic: this machine reaches only loopback.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The services pass keeps its screenshots apart: `make test` runs both passes at once.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
if os.environ.get("FLAGSTAFF_REQUIRE_SERVICES") == "1":
    ARTIFACTS /= "services"
PASSWORD = "correct horse battery staple"


# For each visible card title, paragraph of a flush card and first cell of a card's table's rows:
# its text's distance from its card's left edge. A padded card's 1 px border and 1.25rem of
# padding; a flush card's title and paragraphs, and a table's cells, pad themselves as much.
TEXT_INSET = 21
_TEXT_INSETS = """() => [...document.querySelectorAll(
    '.card .card-title, .card-flush > p, .card > .table > * > tr > :first-child,'
    + '.card > .table-wrap > .table > * > tr > :first-child')]
  .filter((element) => element.offsetParent !== null)
  .map((element) => [
    element.textContent.trim().slice(0, 40),
    Math.round(element.getBoundingClientRect().left + parseFloat(getComputedStyle(element).paddingLeft)
      - element.closest('.card').getBoundingClientRect().left),
  ])"""


def save_page(page: Page, name: str) -> None:
    """A screenshot of the whole page to test-artifacts/<name>.png, to be looked at; and what a
    look would catch and a test can: each card's title, text and tables sit at its card's padding."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    misplaced = [(text, inset) for text, inset in page.evaluate(_TEXT_INSETS) if inset != TEXT_INSET]
    assert misplaced == [], f"{name}: text off its card's padding (px from the card's edge): {misplaced}"


def log_in(page: Page, url: str, username: str) -> None:
    """Open `url` (a page that asks for a login first, or the login page) and log in as
    `username`, whose password is PASSWORD."""
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")


def violations_on(page: Page) -> list[str]:
    """The Content-Security-Policy violations Chromium reports on `page` from now on."""
    found: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    return found
