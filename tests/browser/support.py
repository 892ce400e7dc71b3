"""What the browser tests share besides fixtures: where Chromium is, where screenshots go,
logging in, and listening for Content-Security-Policy violations."""

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
