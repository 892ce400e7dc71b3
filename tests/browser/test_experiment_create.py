"""A product owner's A/B experiment from the experiments page, in a real browser: the form open
at 1280 and 390 px (screenshots), a mistake said at its field, then the draft's page with its
deploy checklist and Start."""

import pytest
from playwright.sync_api import expect

from controlplane.models import Role
from rollouts.models import Experiment
from tests.browser.support import PASSWORD, log_in, save_page
from tests.browser.test_layout import check_page, support_chat
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_new_experiment__filled_in_the_form__a_draft_with_its_checklist(live_server, page):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    support_chat()  # staging serves v1 of support-chat, and v2 and v3 exist
    log_in(page, f"{live_server.url}/experiments/", "owner@example.com")
    form = page.locator("#new-experiment")

    form.locator("summary.card-title").click()
    form.locator("select[name=flag]").select_option("support-chat")
    form.locator("select[name=environment]").select_option("staging")
    form.locator("input[name=candidate_1]").fill("2")
    form.locator("input[name=name_1]").fill("Opus")  # not a valid arm name: said at the field
    form.locator("input[name=candidate_2]").fill("3")
    form.locator("input[name=name_2]").fill("longer")
    form.locator("textarea[name=reason]").fill("is Opus worth its price here?")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        save_page(page, f"experiment-new-{width}")
        check_page(page, "experiment-new", width)
        if width < 900:
            page.locator(".nav-toggle").click()  # check_page opened the menu: fold it again
    page.set_viewport_size({"width": 1280, "height": 900})
    form.locator("button[type=submit]").click()

    expect(page.locator("#id_name_1_error")).to_contain_text("1-32 lowercase letters")
    expect(page.locator("#new-experiment")).to_have_attribute("open", "")
    expect(page.locator("input[name=candidate_2]")).to_have_value("3")
    page.locator("input[name=name_1]").fill("opus")
    page.locator("#new-experiment button[type=submit]").click()

    expect(page.locator(".messages")).to_contain_text("created: a draft")
    experiment = Experiment.objects.exclude(state="concluded").get()
    assert page.url == f"{live_server.url}/experiments/{experiment.pk}/"
    assert list(experiment.arms.order_by("index").values_list("name", "weight")) == [
        ("baseline", 3334),
        ("opus", 3333),
        ("longer", 3333),
    ]
    expect(page.locator("#checklist")).to_be_visible()
    expect(page.locator("#checklist button", has_text="Start")).to_be_visible()
    save_page(page, "experiment-draft-1280")
