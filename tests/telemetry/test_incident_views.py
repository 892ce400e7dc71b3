from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings

from controlplane.audit import Actor
from flags.models import Environment, Flag
from telemetry.context_processors import BANNER_LIMIT
from telemetry.models.incidents import Incident, IncidentKind, Webhook, WebhookEvent
from telemetry.services import incidents, webhooks
from tests.factories import audit_mark, audit_since, make_environment, make_flag
from tests.pages import logged_in

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def make_incident(
    *, flag: Flag | None = None, environment: Environment | None = None, **fields: Any
) -> Incident:
    """An open incident as the budget check leaves it (the check is tested in test_budgets)."""
    values: dict[str, Any] = {
        "kind": IncidentKind.LATENCY_BUDGET,
        "summary": "support-chat @ production: TTFT p95 2,600 ms over budget 2,000 ms (last 15 min)",
        "evidence": {
            "window": {
                "start": "2026-11-25T11:45:00+00:00",
                "end": "2026-11-25T12:00:00+00:00",
                "minutes": 15,
            },
            "calls": 40,
            "errors": 1,
            "min_calls": 20,
            "checks": [
                {
                    "metric": "ttft_p95_ms",
                    "value": 2600.1,
                    "budget": 2000,
                    "budget_source": "flag",
                    "breached": True,
                }
            ],
        },
        "opened_at": NOON,
    }
    values.update(fields)
    return Incident.objects.create(
        flag=flag or make_flag(), environment=environment or make_environment(), **values
    )


# the banner


def test_banner__open_incident__shown_on_every_page_with_link(viewer: User) -> None:
    incident = make_incident()

    content = logged_in(viewer).get("/flags/").content.decode()

    assert "An incident is open" in content
    assert incident.summary in content
    assert f'href="/incidents/{incident.pk}/"' in content


def test_banner__only_resolved_incidents__not_shown(viewer: User) -> None:
    incidents.resolve_incident(incident=make_incident(), actor=ACTOR)

    content = logged_in(viewer).get("/flags/").content.decode()

    assert "incident-banner" not in content


def test_banner__more_than_the_limit__newest_shown_and_a_link_to_all(viewer: User) -> None:
    for _ in range(BANNER_LIMIT + 2):
        make_incident()

    response = logged_in(viewer).get("/flags/")

    assert len(response.context["open_incidents"]) == BANNER_LIMIT
    assert response.context["more_open_incidents"] is True
    assert "See all open incidents" in response.content.decode()


def test_banner__context_processor__one_query(viewer: User, rf: Any) -> None:
    from telemetry.context_processors import open_incidents

    for _ in range(5):
        make_incident()
    request = rf.get("/flags/")
    request.user = viewer

    with CaptureQueriesContext(connection) as queries:
        context = open_incidents(request)
        [incident.flag.key for incident in context["open_incidents"]]

    assert len(queries) == 1


def test_banner__anonymous_login_page__not_shown(client: Client) -> None:
    make_incident()

    content = client.get("/login/").content.decode()

    assert "incident-banner" not in content


# incidents pages


def test_incident_list__viewer__lists_incidents_with_state_filter(viewer: User) -> None:
    open_one = make_incident()
    resolved = incidents.resolve_incident(incident=make_incident(), actor=ACTOR)
    client = logged_in(viewer)

    everything = client.get("/incidents/")
    only_open = client.get("/incidents/?state=open")

    assert everything.status_code == 200
    assert {i.pk for i in everything.context["page"]} == {open_one.pk, resolved.pk}
    assert [i.pk for i in only_open.context["page"]] == [open_one.pk]


def test_incident_list__htmx_filter__renders_only_the_results_block(viewer: User) -> None:
    make_incident()

    response = logged_in(viewer).get("/incidents/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="incident_results")

    content = response.content.decode()
    assert "<table" in content
    assert "<html" not in content


def test_incident_list__anonymous__redirected_to_login(client: Client) -> None:
    response = client.get("/incidents/")

    assert (response.status_code, response["Location"].split("?")[0]) == (302, "/login/")


def test_incident_detail__viewer__evidence_shown_without_resolve_form(viewer: User) -> None:
    incident = make_incident()

    response = logged_in(viewer).get(f"/incidents/{incident.pk}/")

    content = response.content.decode()
    assert "ttft_p95_ms" in content
    assert "2600.1" in content
    assert "Resolve by hand" not in content


def test_incident_detail__editor__resolve_form_shown(editor: User) -> None:
    incident = make_incident()

    content = logged_in(editor).get(f"/incidents/{incident.pk}/").content.decode()

    assert "Resolve by hand" in content
    assert "a latency p95 at most 90 % of its budget" in content


def test_incident_detail__unknown__404(viewer: User) -> None:
    assert logged_in(viewer).get("/incidents/999999/").status_code == 404


def test_incident_resolve__editor__resolved_and_redirected(editor: User) -> None:
    incident = make_incident()

    response = logged_in(editor).post(f"/incidents/{incident.pk}/resolve/", {"reason": "traffic gone"})

    assert (response.status_code, response["Location"]) == (302, f"/incidents/{incident.pk}/")
    incident.refresh_from_db()
    assert (incident.state, incident.resolution["reason"]) == ("resolved", "traffic gone")


def test_incident_resolve__viewer__403_and_still_open(viewer: User) -> None:
    incident = make_incident()

    response = logged_in(viewer).post(f"/incidents/{incident.pk}/resolve/")

    assert response.status_code == 403
    assert Incident.objects.get().state == "open"


def test_incident_resolve__get__405(editor: User) -> None:
    incident = make_incident()

    assert logged_in(editor).get(f"/incidents/{incident.pk}/resolve/").status_code == 405


# budgets form


def test_flag_budgets_page__viewer__effective_budgets_without_form(viewer: User) -> None:
    flag = make_flag(surface="typing_assist")

    response = logged_in(viewer).get(f"/flags/{flag.key}/budgets/")

    assert response.status_code == 200
    assert response.context["effective"].ttft_p95_ms == 200
    assert "Save budgets" not in response.content.decode()


def test_flag_budgets_page__editor_posts__overrides_saved_with_audit(editor: User) -> None:
    flag = make_flag(surface="chat")
    mark = audit_mark()

    response = logged_in(editor).post(
        f"/flags/{flag.key}/budgets/",
        {"ttft_p95_ms": "1500", "total_p95_ms": "", "daily_cost_usd": "30", "reason": "SLO"},
    )

    assert (response.status_code, response["Location"]) == (302, f"/flags/{flag.key}/budgets/")
    flag.refresh_from_db()
    assert flag.budgets == {"ttft_p95_ms": 1500, "daily_cost_usd": "30.00"}
    [entry] = audit_since(mark)
    assert (entry.action, entry.actor_name, entry.reason) == ("flag.budgets_changed", "editor", "SLO")


def test_flag_budgets_page__blank_field__back_to_default(editor: User) -> None:
    flag = incidents.update_flag_budgets(flag=make_flag(), changes={"ttft_p95_ms": 900}, actor=ACTOR)

    logged_in(editor).post(
        f"/flags/{flag.key}/budgets/", {"ttft_p95_ms": "", "total_p95_ms": "", "daily_cost_usd": ""}
    )

    flag.refresh_from_db()
    assert flag.budgets == {}


def test_flag_budgets_page__invalid__form_errors_and_nothing_saved(editor: User) -> None:
    flag = make_flag()

    response = logged_in(editor).post(
        f"/flags/{flag.key}/budgets/", {"ttft_p95_ms": "0", "daily_cost_usd": "x"}
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"ttft_p95_ms", "daily_cost_usd"}
    flag.refresh_from_db()
    assert flag.budgets == {}


def test_flag_budgets_page__viewer_posts__403(viewer: User) -> None:
    flag = make_flag()

    response = logged_in(viewer).post(f"/flags/{flag.key}/budgets/", {"ttft_p95_ms": "10"})

    assert response.status_code == 403


def test_flag_budgets_page__anonymous__redirected(client: Client) -> None:
    assert client.get(f"/flags/{make_flag().key}/budgets/").status_code == 302


def test_flag_budgets_page__unknown_flag__404(viewer: User) -> None:
    assert logged_in(viewer).get("/flags/nope/budgets/").status_code == 404


# webhooks pages


@pytest.fixture
def loopback(settings: Settings) -> None:
    settings.FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK = True


def test_webhooks_page__admin_creates__secret_shown_once(admin: User) -> None:
    client = logged_in(admin)

    created = client.post(
        "/webhooks/",
        {"name": "pager", "url": "https://hooks.example.com/x", "events": [WebhookEvent.INCIDENT_OPENED]},
    )

    webhook = Webhook.objects.get()
    assert created.status_code == 201
    assert webhook.secret in created.content.decode()
    assert webhook.events == [WebhookEvent.INCIDENT_OPENED]
    assert webhook.secret not in client.get("/webhooks/").content.decode()
    assert webhook.secret not in client.get(f"/webhooks/{webhook.pk}/").content.decode()


def test_webhooks_page__http_url__error_on_the_url_field(admin: User) -> None:
    response = logged_in(admin).post(
        "/webhooks/",
        {"name": "pager", "url": "http://hooks.example.com/x", "events": [WebhookEvent.INCIDENT_OPENED]},
    )

    assert response.status_code == 200
    assert "url" in response.context["form"].errors
    assert not Webhook.objects.exists()


def test_webhook_page__deliveries__listed_in_the_log(admin: User, loopback: None) -> None:
    webhook = webhooks.create_webhook(
        name="pager", url="http://127.0.0.1:9/x", events=[WebhookEvent.INCIDENT_OPENED], actor=ACTOR
    )
    [delivery] = webhooks.enqueue_event(event=WebhookEvent.INCIDENT_OPENED, payload={"id": 1})
    webhooks.attempt_delivery(delivery_id=delivery.pk)

    response = logged_in(admin).get(f"/webhooks/{webhook.pk}/")

    assert [d.pk for d in response.context["page"]] == [delivery.pk]
    assert "pending" in response.content.decode()


def test_webhook_deactivate__admin__inactive_and_redirected(admin: User) -> None:
    webhook = webhooks.create_webhook(
        name="pager", url="https://hooks.example.com/x", events=[WebhookEvent.INCIDENT_OPENED], actor=ACTOR
    )

    response = logged_in(admin).post(f"/webhooks/{webhook.pk}/deactivate/")

    assert (response.status_code, response["Location"]) == (302, f"/webhooks/{webhook.pk}/")
    webhook.refresh_from_db()
    assert webhook.active is False
    logged_in(admin).post(f"/webhooks/{webhook.pk}/activate/")
    webhook.refresh_from_db()
    assert webhook.active is True


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/webhooks/"),
        ("post", "/webhooks/"),
        ("get", "/webhooks/{pk}/"),
        ("post", "/webhooks/{pk}/deactivate/"),
    ],
)
def test_webhooks_pages__editor__403(editor: User, method: str, path: str) -> None:
    webhook = webhooks.create_webhook(
        name="pager", url="https://hooks.example.com/x", events=[WebhookEvent.INCIDENT_OPENED], actor=ACTOR
    )

    response = getattr(logged_in(editor), method)(path.format(pk=webhook.pk))

    assert response.status_code == 403
    webhook.refresh_from_db()
    assert webhook.active is True


def test_webhooks_page__anonymous__redirected(client: Client) -> None:
    assert client.get("/webhooks/").status_code == 302


# navigation


def test_navigation__signed_in__links_incidents_and_usage(viewer: User) -> None:
    content = logged_in(viewer).get("/incidents/").content.decode()

    assert 'href="/incidents/"' in content
    assert 'href="/usage/"' in content


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/incidents/"),
        ("get", "/incidents/{incident}/"),
        ("post", "/incidents/{incident}/resolve/"),
        ("get", "/flags/{flag}/budgets/"),
        ("post", "/flags/{flag}/budgets/"),
        ("get", "/webhooks/"),
        ("post", "/webhooks/"),
        ("get", "/webhooks/{webhook}/"),
        ("post", "/webhooks/{webhook}/deactivate/"),
        ("post", "/webhooks/{webhook}/activate/"),
        ("get", "/usage/"),
    ],
)
def test_pages__anonymous__redirected_to_login_and_nothing_changes(
    client: Client, method: str, path: str
) -> None:
    incident = make_incident()
    webhook = webhooks.create_webhook(
        name="pager", url="https://hooks.example.com/x", events=[WebhookEvent.INCIDENT_OPENED], actor=ACTOR
    )
    mark = audit_mark()

    response = getattr(client, method)(
        path.format(incident=incident.pk, flag=incident.flag.key, webhook=webhook.pk)
    )

    assert (response.status_code, response["Location"].split("?")[0]) == (302, "/login/")
    assert audit_since(mark) == []


@pytest.mark.parametrize("path", ["/webhooks/{webhook}/activate/", "/webhooks/{webhook}/deactivate/"])
def test_webhook_activation__viewer__403(viewer: User, path: str) -> None:
    webhook = webhooks.create_webhook(
        name="pager", url="https://hooks.example.com/x", events=[WebhookEvent.INCIDENT_OPENED], actor=ACTOR
    )

    assert logged_in(viewer).post(path.format(webhook=webhook.pk)).status_code == 403
