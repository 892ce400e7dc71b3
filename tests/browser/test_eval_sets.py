"""Eval set and judge pages in a real browser, on a laptop and on a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from controlplane.audit import Actor
from controlplane.models import Role
from evals.services import eval_sets
from flags.forms import starter_content
from tests.browser.support import PASSWORD, log_in, save_page
from tests.factories import make_flag, make_user, make_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LONG = "A question long enough to need wrapping on a phone " * 6


def _data() -> None:
    eval_set = eval_sets.create_eval_set(key="support", surface="chat", actor=Actor.system("t"))
    cases = [
        {
            "input": {"messages": [{"role": "user", "content": f"{LONG}{i}"}]},
            "reference": {"text": "An answer " * 20},
        }
        for i in range(5)
    ]
    eval_sets.create_eval_set_version(
        eval_set=eval_set, cases=cases, scorers=[{"name": "rouge_l"}], actor=Actor.system("t")
    )
    make_version(flag=make_flag(key="tone", surface="judge"), content=starter_content("judge"))
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)


@pytest.mark.parametrize(("width", "name"), [(1024, "laptop"), (390, "phone")])
def test_eval_pages__laptop_and_phone__no_page_wider_than_the_screen(
    live_server, browser: Browser, width: int, name: str
) -> None:
    _data()
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    log_in(page, f"{live_server.url}/eval-sets/", "owner@example.com")
    for path, shot in [
        ("/eval-sets/", "eval-sets"),
        ("/eval-sets/support/", "eval-set"),
        ("/eval-sets/support/versions/1/edit/", "eval-set-edit"),
        ("/judges/tone/?eval_set=support", "calibration"),
    ]:
        page.goto(f"{live_server.url}{path}")
        save_page(page, f"{shot}-{name}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a {width}px screen"
    context.close()


def test_import__in_a_browser__bad_line_shown_then_good_file_imported(
    live_server, browser: Browser, tmp_path
) -> None:
    _data()
    page = browser.new_context(viewport={"width": 1024, "height": 900}).new_page()
    log_in(page, f"{live_server.url}/eval-sets/support/", "owner@example.com")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": {"messages": [{"role": "user", "content": "Hi"}]}}\n{"input": {}}\n')
    page.set_input_files("input[name=file]", str(bad))
    page.click("button:has-text('Import')")
    expect(page.locator(".alert-error")).to_contain_text("Line 2")
    save_page(page, "eval-set-import-errors")
    good = tmp_path / "good.csv"
    good.write_text("prompt,reference_text\nWhere is my parcel?,In Lyon\n")
    page.set_input_files("input[name=file]", str(good))
    page.click("button:has-text('Import')")
    expect(page.locator("#cases h2")).to_contain_text("Version 2: 1 case")
