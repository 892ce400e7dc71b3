"""Layout in a real browser at 1280 and 390 px: on every main page no navigation item and no
action is clipped (each one's bounding box lies inside the viewport's width), the navigation
stays one line on a desktop, and the Menu button opens it on a phone. Screenshots of the main
pages at both widths go to test-artifacts/."""

import pytest
from playwright.sync_api import Page, expect

from controlplane.audit import Actor
from controlplane.models import Role
from flags import services
from rollouts.models import Experiment
from rollouts.services import experiments
from tests.browser.support import PASSWORD, log_in, save_page
from tests.factories import VALID_CONTENT, make_environment, make_flag, make_user, make_version
from tests.rollouts.factories import add_arm_traffic, without_checklist

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SYSTEM = Actor.system("tests")
WIDTHS = (1280, 390)
PLAN_IN_ENTERPRISE = {"contextName": "plan", "operator": "IN", "values": ["enterprise"]}

# (name for the screenshot, path)
PAGES = [
    ("flags", "/flags/"),
    ("flag", "/flags/support-chat/"),
    ("editor", "/flags/support-chat/versions/new/?from=1"),
    ("diff", "/flags/support-chat/diff/?from=1&to=2"),
    ("segments", "/segments/"),
    ("models", "/models/"),
    ("deprecations", "/deprecations/"),
    ("dashboard", "/telemetry/flags/support-chat/"),
    ("telemetry", "/telemetry/"),
    ("incidents", "/incidents/"),
    ("budgets", "/flags/support-chat/budgets/"),
    ("usage", "/usage/"),
    ("console-usage", "/usage/console/"),
    ("audit", "/audit/"),
    ("users", "/users/"),
    ("tokens", "/tokens/"),
    ("experiments", "/experiments/"),
    ("approvals", "/approvals/"),
    ("rollback", "/flags/support-chat/environments/production/rollback/"),
    ("rehearsals", "/flags/support-chat/environments/staging/rehearsals/"),
    ("scheduled", "/scheduled-changes/?flag=support-chat"),
    ("timeline", "/timeline/?flag=support-chat&environment=production"),
    ("migrations", "/migrations/"),
    ("rollouts", "/rollouts/"),
]


def support_chat() -> None:
    """support-chat in a protected production: v1 served, a rule to v2 and a 10 % split to v3."""
    production = make_environment(key="production")
    staging = without_checklist(make_environment(key="staging"))
    flag = make_flag(key="support-chat", name="Support chat", owner="cx-team")
    make_version(flag=flag, message="Sonnet")
    make_version(flag=flag, content={**VALID_CONTENT, "model": "claude-opus-5-5"}, message="Opus")
    make_version(flag=flag, content={**VALID_CONTENT, "max_tokens": 2048}, message="Longer answers")
    services.publish_version(flag=flag, environment=production, number=1, actor=SYSTEM)
    services.set_flag_enabled(flag=flag, environment=production, enabled=True, actor=SYSTEM)
    services.add_rule(
        flag=flag,
        environment=production,
        constraints=[PLAN_IN_ENTERPRISE],
        segments=[],
        version=2,
        description="Enterprise",
        actor=SYSTEM,
    )
    services.set_split(flag=flag, environment=production, candidate=3, weight=1000, actor=SYSTEM)
    services.set_environment_protected(environment=production, protected=True, actor=SYSTEM)
    services.publish_version(flag=flag, environment=staging, number=1, actor=SYSTEM)
    experiment = experiments.create_experiment(
        flag=flag,
        environment=staging,
        baseline_weight=3400,
        candidates=[
            {"version": 2, "weight": 3300, "name": "opus"},
            {"version": 3, "weight": 3300, "name": "longer"},
        ],
        window_seconds=86_400,
        policy=[{"metric": "api_error_rate", "margin": 0.01, "critical": True}],
        actor=SYSTEM,
    )
    experiments.start_experiment(experiment=experiment, actor=SYSTEM, reason="a day of traffic")
    for arm, cost in (("baseline", 0.004), ("opus", 0.009), ("longer", 0.0052)):
        add_arm_traffic(experiment, arm=arm, calls=3_000, passed=2_500, errors=15, cost_usd=cost)
    experiments.conclude_experiment(experiment=experiment, actor=SYSTEM, reason="enough traffic")


def clipped(page: Page, selector: str) -> list[str]:
    """The visible elements matching `selector` whose box pokes out of the viewport's width."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    out = []
    for element in page.locator(selector).all():
        if not element.is_visible():
            continue
        box = element.bounding_box()
        if box and (box["x"] < 0 or box["x"] + box["width"] > width + 0.5):
            out.append(f"{element.inner_text()[:40]!r} at x={box['x']:.0f}..{box['x'] + box['width']:.0f}")
    return out


ACTIONS = "main .btn, main button, main input, main select, main textarea"


def check_page(page: Page, name: str, width: int) -> None:
    assert clipped(page, ACTIONS) == [], f"{name} at {width} px: actions clipped"
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} at {width} px: the page is {overflow} px wider than the screen"
    if width < 900:
        menu = page.locator(".nav-toggle")
        expect(menu).to_be_visible()
        menu.click()
        expect(page.locator("#topnav")).to_be_visible()
    nav = page.locator(".mainnav > .nav-link, .mainnav > details > summary, .session button")
    assert nav.count() >= 5
    assert (
        clipped(page, ".mainnav > .nav-link, .mainnav > details > summary, .session .who, .session button")
        == []
    )
    if width >= 900:
        middles = [box["y"] + box["height"] / 2 for box in (item.bounding_box() for item in nav.all()) if box]
        assert max(middles) - min(middles) < 8, f"{name}: the navigation wraps at {width} px"


def test_layout__main_pages_at_1280_and_390__nothing_clipped(live_server, page):
    make_user(role=Role.ADMIN, username="admin@example.com", password=PASSWORD)
    support_chat()
    log_in(page, f"{live_server.url}/flags/", "admin@example.com")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        experiment = Experiment.objects.get()
        for name, path in [*PAGES, ("experiment", f"/experiments/{experiment.pk}/")]:
            page.goto(f"{live_server.url}{path}")
            save_page(page, f"{name}-{width}")
            check_page(page, name, width)


def test_layout__navigation_at_1024__one_line(live_server, page):
    make_user(role=Role.ADMIN, username="admin-with-a-long-name@example.com", password=PASSWORD)
    page.set_viewport_size({"width": 1024, "height": 800})
    log_in(page, f"{live_server.url}/flags/", "admin-with-a-long-name@example.com")

    check_page(page, "flags", 1024)


def test_layout__session_at_1280__the_whole_address_where_there_is_room(live_server, page):
    make_user(role=Role.ADMIN, username="admin-with-a-long-name@example.com", password=PASSWORD)
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, f"{live_server.url}/flags/", "admin-with-a-long-name@example.com")

    who = page.locator(".session .who")
    expect(who).to_have_text("admin-with-a-long-name@example.com")
    assert who.evaluate("(element) => element.scrollWidth <= element.clientWidth"), "the address is cut short"
    check_page(page, "flags", 1280)


def test_layout__flag_page_tabs__each_panel_fits_at_390(live_server, page):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    support_chat()
    page.set_viewport_size({"width": 390, "height": 900})
    log_in(page, f"{live_server.url}/flags/support-chat/", "owner@example.com")
    tabs = page.locator("nav.tabs")

    for tab in ("Overview", "Versions", "Targeting"):
        tabs.locator("a", has_text=tab).click()
        expect(tabs.locator("a", has_text=tab)).to_have_attribute("aria-selected", "true")
        assert clipped(page, ACTIONS) == [], f"the {tab} tab at 390 px"

    tabs.locator("a", has_text="Overview").click()
    expect(page.locator("#users-get")).to_contain_text(
        "plan is one of enterprise → v2 (rule 1); everyone else → v1 to 90 %, v3 to 10 % (split)"
    )
    expect(page.locator("#targeting")).to_be_hidden()
    expect(
        page.locator("tr", has_text="production").locator("button", has_text="Disable")
    ).to_be_in_viewport()
