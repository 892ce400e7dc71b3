"""What the browser tests share besides fixtures: where Chromium is, where screenshots go."""

from pathlib import Path

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
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "correct horse battery staple"
