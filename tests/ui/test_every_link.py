"""Every page reachable from the navigation, followed link by link as an admin would click: none
answers 404 or 5xx. The data set has one of everything the pages show."""

from collections import deque
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from controlplane.audit import Actor
from controlplane.models import Role
from controlplane.services import create_api_token
from flags import services
from telemetry.models.incidents import Incident, IncidentKind
from telemetry.services import webhooks
from telemetry.services.ingest import ingest_calls
from tests.factories import make_environment, make_flag, make_user, make_version
from tests.telemetry.call_factories import at, flag_state_for, make_record, seed_prices

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
# Links that change state or leave the HTML pages: logging out, Django's admin, downloads.
NOT_FOLLOWED = ("/logout/", "/admin/", "/api/v1/audit/export/", "/static/")
PAGE_LIMIT = 400


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def links_of(html: str, page: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    found = []
    for href in parser.hrefs:
        url = urlsplit(urljoin(page, href))
        if url.netloc in ("", "testserver") and url.scheme in ("", "http"):
            found.append(url.path + (f"?{url.query}" if url.query else ""))
    return found


def one_of_everything() -> None:
    seed_prices()
    production, staging = make_environment(key="production"), make_environment(key="staging")
    flag = make_flag(key="support-chat", surface="chat")
    versions = [make_version(flag=flag) for _ in range(3)]
    for environment in (production, staging):
        services.publish_version(flag=flag, environment=environment, number=1, actor=ACTOR)
        services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=ACTOR)
    services.create_segment(
        key="beta-testers",
        name="Beta testers",
        constraints=[{"contextName": "plan", "operator": "IN", "values": ["beta"]}],
        actor=ACTOR,
    )
    services.add_rule(
        flag=flag,
        environment=production,
        constraints=[],
        segments=["beta-testers"],
        version=2,
        description="beta",
        actor=ACTOR,
    )
    services.set_split(flag=flag, environment=production, candidate=3, weight=1000, actor=ACTOR)
    make_flag(key="archived-one")
    services.archive_flag(flag=make_flag(key="old-bot"), actor=ACTOR)
    now = timezone.now()
    ingest_calls(
        records=[
            make_record(
                timestamp=at(now - timedelta(minutes=i)),
                flag_state=flag_state_for(production, versions[i % 3]),
            )
            for i in range(30)
        ]
    )
    Incident.objects.create(
        kind=IncidentKind.LATENCY_BUDGET,
        flag=flag,
        environment=production,
        summary="support-chat @ production: TTFT p95 over budget",
        evidence={"checks": []},
        opened_at=now,
    )
    webhooks.create_webhook(
        name="ops", url="https://hooks.example.com/flagstaff", events=["incident.opened"], actor=ACTOR
    )
    create_api_token(name="ci", scopes=["resolve"], actor=ACTOR, environment=production)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.AUDITOR, Role.ADMIN])
def test_every_link__from_the_navigation__no_page_is_missing_broken_or_forbidden(role: str) -> None:
    """A link a role is shown must open for that role: a 403 behind a link is a broken page too."""
    one_of_everything()
    make_user(role=role, username="someone@example.com", password="pw-for-the-crawl")
    client = Client()
    assert client.login(username="someone@example.com", password="pw-for-the-crawl")
    first = client.get(reverse("flags:list")).content.decode()

    start = [link for link in links_of(first, reverse("flags:list")) if link.startswith("/")]
    seen, queue, broken = set(start), deque((url, "the flags page") for url in start), []
    while queue and len(seen) < PAGE_LIMIT:
        url, linked_from = queue.popleft()
        response = client.get(url)
        if response.status_code >= 400:
            broken.append(f"{url} -> {response.status_code} (linked from {linked_from})")
            continue
        if "text/html" not in response.get("Content-Type", ""):
            continue
        for link in links_of(response.content.decode(), url):
            if link not in seen and not link.startswith(NOT_FOLLOWED):
                seen.add(link)
                queue.append((link, url))

    assert broken == []
    assert len(seen) > 15  # the crawl reached the flag, version, segment, telemetry and incident pages
