"""The auditor's timeline in a real browser: an Auditor goes from the flag page to its history,
narrows it to an environment, reads a rollback with its evidence, and exports it as CSV and as
JSON Lines; on a phone too."""

import csv
import io
import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from controlplane.audit import Actor
from controlplane.models import AuditEntry, Role
from flags import services as flag_services
from rollouts.models import Rollout
from rollouts.services import lifecycle
from tests.browser.support import PASSWORD, log_in, save_page
from tests.factories import FACTORY_ACTOR, make_environment, make_user
from tests.rollouts.factories import make_running_rollout, make_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def rolled_back_canary() -> str:
    """support-chat: a canary of v2 in production, rolled back by a person; v1 also in staging."""
    world = make_world(key="support-chat")
    rollout = make_running_rollout(world)
    lifecycle.rollback_rollout(
        rollout=rollout, actor=Actor.system("maria@example.com"), reason="TTFT up 40 % on the canary"
    )
    staging = make_environment(key="staging")
    flag_services.publish_version(flag=world.flag, environment=staging, number=1, actor=FACTORY_ACTOR)
    return world.environment.key


def download(page: Page, link_text: str) -> str:
    with page.expect_download() as started:
        page.locator("#timeline_results .export a", has_text=link_text).click()
    return Path(started.value.path()).read_text()


def test_timeline__auditor_in_a_browser__opens_it_from_the_flag_and_exports_it(live_server, page):
    environment = rolled_back_canary()
    make_user(role=Role.AUDITOR, username="auditor@example.com", password=PASSWORD)
    log_in(page, f"{live_server.url}/login/?next=/flags/support-chat/", "auditor@example.com")

    page.locator("nav.tabs a", has_text="History").click()
    expect(page.locator("h1")).to_have_text("Timeline")
    page.select_option("#id_environment", environment)
    results = page.locator("#timeline_results")
    expect(results).not_to_contain_text("env staging")
    rollback = page.locator(".timeline-rollback", has_text="rollout.rolled_back")
    expect(rollback).to_contain_text("TTFT up 40 % on the canary")
    rollout_page = f"/rollouts/{Rollout.objects.get().pk}/"
    expect(rollback.locator("a", has_text="rollout")).to_have_attribute("href", rollout_page)
    shown = page.locator(".timeline-event").count()
    save_page(page, "timeline-1360")

    rows = list(csv.DictReader(io.StringIO(download(page, "CSV"))))
    lines = [json.loads(line) for line in download(page, "JSON Lines").splitlines()]

    assert len(rows) == len(lines) == shown
    assert [row["id"] for row in rows] == [str(line["id"]) for line in lines]
    assert {row["environment_key"] for row in rows} == {environment, ""}
    rolled_back = AuditEntry.objects.get(action="rollout.rolled_back")
    assert [line["entry_hash"] for line in lines if line["id"] == rolled_back.pk] == [rolled_back.entry_hash]


def test_timeline__on_a_phone__fits_the_screen(live_server, page):
    environment = rolled_back_canary()
    make_user(role=Role.AUDITOR, username="auditor@example.com", password=PASSWORD)
    page.set_viewport_size({"width": 390, "height": 900})
    log_in(page, f"{live_server.url}/login/?next=/timeline/%3Fflag=support-chat", "auditor@example.com")

    page.goto(f"{live_server.url}/timeline/?flag=support-chat&environment={environment}")
    expect(page.locator(".timeline-rollback")).to_be_visible()
    save_page(page, "timeline-390")

    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    for link in ("CSV", "JSON Lines"):
        box = page.locator("#timeline_results .export a", has_text=link).bounding_box()
        assert box is not None
        assert 0 <= box["x"] <= box["x"] + box["width"] <= 390
