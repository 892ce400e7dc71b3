"""The migration page in a real browser: a flag on Claude Sonnet 4.5 is listed with its runway;
Draft migration saves the draft and starts its gate; once the gate's runs have answered on the
fake Anthropic server, the page names the proposed rollout and leads to it, not started.
The runs are executed in the test's process (the worker path is tests/browser/test_eval_gate.py's).
Screenshots at 1280 and 390 px go to test-artifacts/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from autopilot import services
from autopilot.models import Migration, MigrationState
from controlplane.models import Role
from demo.fake_anthropic import FakeAnthropic
from evals.services import runs
from flags.catalog import seed_catalog
from tests.autopilot.factories import CASES, make_exposed_flag
from tests.browser.support import PASSWORD, log_in, save_page
from tests.evals.run_factories import anthropic_at, marker
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_migration_page__draft_then_gate_passes__leads_to_the_proposed_rollout(
    live_server, page: Page, fake_anthropic: FakeAnthropic
) -> None:
    seed_catalog()
    for index in range(CASES):
        fake_anthropic.script_reply(marker(index), f"It is answer {index}.")
    exposed = make_exposed_flag()
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    log_in(page, f"{live_server.url}/migrations/", "owner@example.com")

    row = page.locator("#exposed tr", has_text=exposed.flag.key)
    expect(row).to_contain_text("claude-sonnet-4-5-20250929")
    expect(row).to_contain_text("days")
    save_page(page, "migrations-exposed-1280")
    row.get_by_role("button", name="Draft migration").click()

    expect(page.locator("h1")).to_contain_text("claude-sonnet-4-5-20250929 → claude-sonnet-5-5")
    expect(page.locator("#status")).to_contain_text("Eval gate running")
    expect(page.locator("#changes")).to_contain_text("top_p")
    migration = Migration.objects.get()
    with anthropic_at(fake_anthropic):
        for run in (migration.run, migration.baseline_run):
            assert run is not None
            runs.execute_run(run_id=run.pk)
    assert services.advance_migration(migration_id=migration.pk) == MigrationState.ROLLOUT_DRAFTED

    page.reload()
    expect(page.locator("#status")).to_contain_text("Rollout proposed")
    expect(page.locator("#status")).to_contain_text("a person starts it")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        save_page(page, f"migration-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#proposed-rollout").click()

    migration.refresh_from_db()
    assert migration.rollout is not None
    expect(page).to_have_url(f"{live_server.url}/rollouts/{migration.rollout.pk}/")
    expect(page.locator("main")).to_contain_text(migration.rollout.get_state_display())
    page.goto(f"{live_server.url}/migrations/")
    expect(page.locator("#migrations")).to_contain_text("A person starts rollout")
    save_page(page, "migrations-1280")
