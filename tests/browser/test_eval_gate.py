"""The eval workflow in a real browser, with a real Celery worker answering through the fake
Anthropic server over HTTP: import an eval set, run versions and watch the progress reach 100 %,
see the gate pass on the version page, compare three candidates, and publish the cheapest that
passes. Screenshots at 1280 and 390 px go to test-artifacts/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from controlplane.audit import Actor
from controlplane.celery import app as celery_app
from controlplane.models import Role
from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from evals.services import gate
from flags import services as flag_services
from flags.catalog import seed_catalog
from flags.models import Flag, FlagState
from telemetry.models import Rollup
from telemetry.price_table import clear_price_cache
from tests.browser.support import PASSWORD, log_in, save_page
from tests.factories import make_environment, make_flag, make_user, make_version
from tests.integration.test_worker import database_url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CASES = 20
RUN_TIMEOUT_MS = 90_000
ACTOR = Actor.system("tests")
CURT = "[curt]"  # in v4's system prompt: the fake answers it with a reply that fails every case


@pytest.fixture
def worker(tmp_path: Path, fake_anthropic: FakeAnthropic) -> Iterator[None]:
    """A real worker on the broker and database the live server uses, calling the fake server."""
    celery_app.control.purge()  # tasks other tests left queued belong to databases long gone
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "FLAGSTAFF_VAR_DIR": str(settings.VAR_DIR),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "ANTHROPIC_API_KEY": DEFAULT_API_KEY,
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
    }
    argv = [
        sys.executable, "-m", "celery", "-A", "controlplane", "worker",
        "--pool", "solo", "--concurrency", "1", "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _flag_with_candidates() -> None:
    """v1 Sonnet serves production; v2 Haiku, v3 Opus and v4 Haiku (curt, it fails) are candidates;
    a week of logged calls to compare against."""
    seed_catalog()
    clear_price_cache()
    production = make_environment(key="production")
    flag = make_flag(key="support-chat")
    base = {"max_tokens": 256, "system": "Answer the customer."}
    for model in ("claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5"):
        make_version(flag=flag, content={**base, "model": model})
    make_version(flag=flag, content={**base, "model": "claude-haiku-5-5", "system": f"Be curt. {CURT}"})
    flag_services.publish_version(flag=flag, environment=production, number=1, actor=ACTOR)
    Rollup.objects.create(
        bucket=timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2),
        environment=production,
        flag=flag,
        version=1,
        model="claude-sonnet-5-5",
        calls=500,
        input_tokens=400_000,
        cache_read_tokens=600_000,
        output_tokens=60_000,
        cost_micro_usd=1_460_000,
    )
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)


def _eval_file(tmp_path: Path) -> Path:
    lines = [
        f'{{"input": {{"messages": [{{"role": "user", "content": "Where is parcel {i}?"}}]}}, '
        f'"reference": {{"text": "parcel {i}"}}}}'
        for i in range(CASES)
    ]
    path = tmp_path / "support-qa.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _watch_csp(page: Page) -> list[str]:
    found: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    return found


def _shot(page: Page, name: str) -> None:
    save_page(page, name)


def _run_from_version_page(page: Page, base: str, number: int, shot: str = "") -> None:
    page.goto(f"{base}/flags/support-chat/versions/{number}/")
    page.locator("#version_evals button:has-text('Run v')").click()
    expect(page.locator("h1")).to_contain_text("Eval run #")
    progress = page.locator("#run_progress")
    expect(progress.locator(".badge")).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    expect(progress).to_contain_text(f"{CASES} / {CASES}")
    expect(progress).to_contain_text("(100 %)")
    if shot:
        _shot(page, shot)


def test_eval_workflow__import_run_gate_compare_publish(
    live_server, browser: Browser, worker: None, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    _flag_with_candidates()
    fake_anthropic.script_reply(CURT, "No.")
    base = live_server.url
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    violations = _watch_csp(page)
    log_in(page, f"{base}/eval-sets/", "owner@example.com")

    # An eval set, imported from a JSON Lines file through the UI, with a `contains` scorer.
    page.fill("input[name=key]", "support-qa")
    page.select_option("select[name=flag]", "support-chat")
    page.click("button:has-text('Create eval set')")
    page.set_input_files("input[name=file]", str(_eval_file(tmp_path)))
    page.fill("textarea[name=scorers]", '[{"name": "contains"}]')
    page.click("button:has-text('Import')")
    expect(page.locator("#cases h2")).to_contain_text(f"Version 1: {CASES} cases")
    _shot(page, "eval-gate-eval-set-1280")
    # Twenty cases can show non-inferiority only with a wide margin (Tango's test, n = 20).
    gate.set_gate_policy(
        flag=Flag.objects.get(key="support-chat"),
        eval_set_key="support-qa",
        required_pass_rate=0.8,
        margin=0.2,
        actor=ACTOR,
    )

    # The serving version and a candidate run through the Messages API; progress reaches 100 %.
    _run_from_version_page(page, base, 1)
    _run_from_version_page(page, base, 2, shot="eval-gate-run-1280")

    # Judged against what production serves, the gate passes on the version page.
    page.goto(f"{base}/flags/support-chat/versions/2/")
    page.locator("#version_evals button:has-text('Judge against production')").click()
    expect(page.locator(".message-success")).to_contain_text("v2 passes the gate")
    expect(page.get_by_text("gate: passed", exact=True)).to_be_visible()
    expect(page.locator("#version_evals [data-gate=production]")).to_have_text("passed")
    _shot(page, "eval-gate-version-1280")

    # Three candidates compared: the missing runs start in one click and the table fills in.
    page.goto(f"{base}/flags/support-chat/compare/?versions=2,3,4&environment=production")
    page.click("button:has-text('Run v3, v4 on support-qa v1')")
    expect(page.locator(".message-success")).to_contain_text("Started 2 run(s): v3, v4")
    table = page.locator("#comparison_table")
    expect(table.locator("tr[data-version='4'] td").nth(1)).to_have_text(
        re.compile(r"^\s*0\.0 %"), timeout=RUN_TIMEOUT_MS
    )
    expect(table.locator("tr[data-version='3'] td").nth(1)).to_contain_text("100.0 %", timeout=RUN_TIMEOUT_MS)
    page.click("button:has-text('Judge the candidates')")
    expect(page.locator(".message-success")).to_contain_text("Judged 3 version(s): 2 passed the gate.")
    winner = page.locator("tr.is-winner")
    expect(winner).to_have_attribute("data-version", "2")
    expect(winner.locator(".winner-badge")).to_have_text("cheapest that passes")
    expect(page.locator("#winner")).to_contain_text("v2 (claude-haiku-5-5) is the cheapest that passes")
    expect(page.locator("tr[data-version='4'] .badge").last).to_have_text("failed")
    expect(page.locator("#comparison_table")).to_contain_text(
        "Cache-hit ratio: 60 % of the logged prompt tokens"
    )
    _shot(page, "eval-gate-compare-1280")

    # One click (with a reason) publishes the winner behind the gate.
    page.fill("#winner input[name=reason]", "Cheapest that passes the support-qa gate")
    page.click("#winner button:has-text('Publish v2 to production')")
    expect(page.locator(".message-success")).to_contain_text("'production' now serves v2")
    assert FlagState.objects.filter().values_list("serving_version__number", flat=True).get() == 2
    # Every case of every version was asked once: four runs, no case paid for twice (v1, v2 and
    # v3 send the same prompt, each to its own model; v4's prompt differs).
    assert fake_anthropic.scripts.total() == 4 * CASES
    assert fake_anthropic.scripts.repeated() == {
        f"Answer the customer.\nWhere is parcel {i}?": 3 for i in range(CASES)
    }
    assert violations == []


@pytest.mark.parametrize(("width", "name"), [(1024, "laptop"), (390, "phone")])
def test_eval_pages__laptop_and_phone__nothing_wider_than_the_screen(
    live_server, browser: Browser, width: int, name: str, tmp_path: Path
) -> None:
    """The comparison, version panel, run and calibration pages at 1024 and 390 px (screenshots
    of the phone's at 390), with the data of a finished comparison."""
    from tests.evals.gate_factories import make_three_candidates

    make_three_candidates(now=timezone.now())
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    violations = _watch_csp(page)
    log_in(page, f"{live_server.url}/eval-runs/", "owner@example.com")
    page.goto(f"{live_server.url}/flags/support-chat/compare/?versions=2,3,4")
    page.click("button:has-text('Judge the candidates')")
    expect(page.locator("tr.is-winner")).to_have_attribute("data-version", "2")
    for path, shot in [
        ("/flags/support-chat/compare/?versions=2,3,4", "compare"),
        ("/flags/support-chat/versions/2/", "version"),
        ("/eval-runs/", "runs"),
        ("/eval-sets/support-qa/", "eval-set"),
    ]:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        if width == 390:
            _shot(page, f"eval-gate-{shot}-390")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a {width}px screen"
    assert violations == []
    context.close()
