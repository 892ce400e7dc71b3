from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from controlplane.audit import Actor
from controlplane.errors import Conflict
from controlplane.services import IssuedToken
from flags.models import Environment, Flag
from telemetry.models.incidents import Incident, IncidentKind, WebhookDelivery, WebhookEvent
from telemetry.services import incidents, webhooks
from tests.factories import audit_mark, audit_since, client_for, make_environment, make_flag, make_token

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
INCIDENTS_URL = "/api/v1/incidents/"


def make_incident(
    *,
    kind: str = IncidentKind.LATENCY_BUDGET,
    flag: Flag | None = None,
    environment: Environment | None = None,
) -> Incident:
    """An open incident as the budget check leaves it (the check is tested in test_budgets)."""
    return Incident.objects.create(
        kind=kind,
        flag=flag or make_flag(),
        environment=environment or make_environment(),
        summary="TTFT p95 2,600 ms over budget 2,000 ms",
        evidence={"checks": [{"metric": "ttft_p95_ms", "value": 2600, "budget": 2000, "breached": True}]},
        opened_at=NOON,
    )


# the database holds the invariants


def test_incident__second_open_of_same_kind_flag_environment__refused_by_the_database() -> None:
    first = make_incident()

    with pytest.raises(IntegrityError), transaction.atomic():
        make_incident(flag=first.flag, environment=first.environment)


def test_incident__other_kind_for_same_pair__allowed() -> None:
    first = make_incident()

    make_incident(kind=IncidentKind.COST_BUDGET, flag=first.flag, environment=first.environment)

    assert Incident.objects.open().count() == 2


def test_incident__resolved_one_exists__a_new_one_may_open() -> None:
    first = incidents.resolve_incident(incident=make_incident(), actor=ACTOR)

    make_incident(flag=first.flag, environment=first.environment)

    assert Incident.objects.count() == 2


def test_incident__resolved_without_time__refused_by_the_database() -> None:
    incident = make_incident()

    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(state="resolved")


# resolving by hand


def test_resolve_incident__open__resolved_with_audit_and_webhook_rows() -> None:
    webhooks.create_webhook(
        name="pager", url="https://hooks.example.com/x", events=[WebhookEvent.INCIDENT_RESOLVED], actor=ACTOR
    )
    incident = make_incident()
    mark = audit_mark()

    incident = incidents.resolve_incident(incident=incident, actor=ACTOR, reason="traffic moved away")

    assert (incident.state, incident.resolution["reason"]) == ("resolved", "traffic moved away")
    assert incident.resolved_at is not None
    [entry] = audit_since(mark)
    assert (entry.action, entry.reason, entry.flag_key) == (
        "incident.resolved",
        "traffic moved away",
        incident.flag.key,
    )
    [delivery] = WebhookDelivery.objects.all()
    assert (delivery.event, delivery.payload["state"], delivery.payload["id"]) == (
        "incident.resolved",
        "resolved",
        incident.pk,
    )


def test_resolve_incident__already_resolved__conflict() -> None:
    incident = incidents.resolve_incident(incident=make_incident(), actor=ACTOR)

    with pytest.raises(Conflict):
        incidents.resolve_incident(incident=incident, actor=ACTOR)


# API: incidents


def test_incidents_api_get__viewer__newest_first_with_evidence(viewer: User) -> None:
    older = make_incident()
    Incident.objects.filter(pk=older.pk).update(opened_at=NOON - timedelta(hours=1))
    newer = make_incident(kind=IncidentKind.COST_BUDGET)

    body = client_for(viewer).get(INCIDENTS_URL).json()

    assert [row["id"] for row in body["results"]] == [newer.pk, older.pk]
    row = body["results"][1]
    assert (row["kind"], row["state"], row["flag"], row["environment"]) == (
        "latency_budget",
        "open",
        older.flag.key,
        older.environment.key,
    )
    assert row["evidence"]["checks"][0]["value"] == 2600


@pytest.mark.parametrize(
    ("query", "expected"),
    [("state=open", ["open"]), ("state=resolved", ["resolved"]), ("kind=cost_budget", [])],
)
def test_incidents_api_get__filters__applied(viewer: User, query: str, expected: list[str]) -> None:
    make_incident()
    incidents.resolve_incident(incident=make_incident(), actor=ACTOR)

    body = client_for(viewer).get(f"{INCIDENTS_URL}?{query}").json()

    assert sorted(row["state"] for row in body["results"]) == expected


def test_incidents_api_get__flag_filter__only_that_flag(viewer: User) -> None:
    mine = make_incident()
    make_incident()

    body = client_for(viewer).get(f"{INCIDENTS_URL}?flag={mine.flag.key}").json()

    assert [row["id"] for row in body["results"]] == [mine.pk]


def test_incident_api_get__unknown__404(viewer: User) -> None:
    assert client_for(viewer).get(f"{INCIDENTS_URL}999999/").status_code == 404


def test_incident_resolve_api__editor__200_resolved(editor: User) -> None:
    incident = make_incident()

    response = client_for(editor).post(
        f"{INCIDENTS_URL}{incident.pk}/resolve/", {"reason": "ok"}, format="json"
    )

    assert (response.status_code, response.json()["state"]) == (200, "resolved")


def test_incident_resolve_api__already_resolved__409(editor: User) -> None:
    incident = incidents.resolve_incident(incident=make_incident(), actor=ACTOR)

    response = client_for(editor).post(f"{INCIDENTS_URL}{incident.pk}/resolve/", {}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "already_resolved")


def test_incident_resolve_api__viewer__403(viewer: User) -> None:
    incident = make_incident()

    response = client_for(viewer).post(f"{INCIDENTS_URL}{incident.pk}/resolve/", {}, format="json")

    assert response.status_code == 403
    assert Incident.objects.get().state == "open"


def test_incidents_api__anonymous__401(anonymous_client: Any) -> None:
    assert anonymous_client.get(INCIDENTS_URL).status_code == 401


def test_incidents_api__telemetry_only_token__403(outsider_token: IssuedToken) -> None:
    assert client_for(outsider_token).get(INCIDENTS_URL).status_code == 403


# API: budgets


def budgets_url(flag: Flag) -> str:
    return f"/api/v1/flags/{flag.key}/budgets/"


def test_flag_budgets_api_get__chat_flag__defaults_overrides_and_effective(viewer: User) -> None:
    flag = incidents.update_flag_budgets(
        flag=make_flag(surface="chat"), changes={"daily_cost_usd": "25"}, actor=ACTOR
    )

    body = client_for(viewer).get(budgets_url(flag)).json()

    assert body == {
        "flag": flag.key,
        "surface": "chat",
        "overrides": {"ttft_p95_ms": None, "total_p95_ms": None, "daily_cost_usd": "25.00"},
        "defaults": {"ttft_p95_ms": 2000, "total_p95_ms": None, "daily_cost_usd": None},
        "effective": {"ttft_p95_ms": 2000, "total_p95_ms": None, "daily_cost_usd": "25.00"},
    }


def test_flag_budgets_api_patch__editor__only_sent_fields_change(editor: User) -> None:
    flag = incidents.update_flag_budgets(
        flag=make_flag(surface="agent"), changes={"daily_cost_usd": "25"}, actor=ACTOR
    )

    response = client_for(editor).patch(
        budgets_url(flag), {"total_p95_ms": 45000, "reason": "long tasks"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["overrides"] == {
        "ttft_p95_ms": None,
        "total_p95_ms": 45000,
        "daily_cost_usd": "25.00",
    }


def test_flag_budgets_api_patch__null__clears_override(editor: User) -> None:
    flag = incidents.update_flag_budgets(flag=make_flag(), changes={"ttft_p95_ms": 900}, actor=ACTOR)

    response = client_for(editor).patch(budgets_url(flag), {"ttft_p95_ms": None}, format="json")

    assert response.json()["effective"]["ttft_p95_ms"] == 2000


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"ttft_p95_ms": 0}, "ttft_p95_ms"),
        ({"daily_cost_usd": "-3"}, "daily_cost_usd"),
        ({"p99_ms": 5}, "p99_ms"),
        ({"ttft_p95_ms": "fast"}, "ttft_p95_ms"),
    ],
)
def test_flag_budgets_api_patch__invalid__400_at_path(editor: User, body: dict[str, Any], path: str) -> None:
    response = client_for(editor).patch(budgets_url(make_flag()), body, format="json")

    assert response.status_code == 400
    assert [error["path"] for error in response.json()["errors"]] == [path]


def test_flag_budgets_api_patch__viewer__403_and_unchanged(viewer: User) -> None:
    flag = make_flag()

    response = client_for(viewer).patch(budgets_url(flag), {"ttft_p95_ms": 10}, format="json")

    assert response.status_code == 403
    flag.refresh_from_db()
    assert flag.budgets == {}


def test_flag_budgets_api__anonymous__401(anonymous_client: Any) -> None:
    assert anonymous_client.get(budgets_url(make_flag())).status_code == 401


def test_flag_budgets_api_patch__environment_bound_token__403() -> None:
    token = make_token(scopes=["read", "write"], environment=make_environment())

    response = client_for(token).patch(budgets_url(make_flag()), {"ttft_p95_ms": 10}, format="json")

    assert response.status_code == 403


def test_flag_budgets_api_get__unknown_flag__404(viewer: User) -> None:
    assert client_for(viewer).get("/api/v1/flags/nope/budgets/").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/incidents/{incident}/"),
        ("post", "/api/v1/incidents/{incident}/resolve/"),
        ("patch", "/api/v1/flags/{flag}/budgets/"),
        ("post", "/api/v1/webhooks/"),
        ("get", "/api/v1/webhooks/{webhook}/"),
        ("patch", "/api/v1/webhooks/{webhook}/"),
        ("delete", "/api/v1/webhooks/{webhook}/"),
        ("get", "/api/v1/webhooks/{webhook}/deliveries/"),
    ],
)
def test_api__anonymous__401_and_nothing_changes(anonymous_client: Any, method: str, path: str) -> None:
    incident = make_incident()
    webhook = webhooks.create_webhook(
        name="pager", url="https://hooks.example.com/x", events=[WebhookEvent.INCIDENT_OPENED], actor=ACTOR
    )
    mark = audit_mark()

    url = path.format(incident=incident.pk, flag=incident.flag.key, webhook=webhook.pk)
    response = getattr(anonymous_client, method)(url, {}, format="json")

    assert response.status_code == 401
    assert audit_since(mark) == []


@pytest.mark.parametrize("path", ["/api/v1/incidents/{incident}/", "/api/v1/flags/{flag}/budgets/"])
def test_api_reads__telemetry_only_token__403(outsider_token: IssuedToken, path: str) -> None:
    incident = make_incident()

    response = client_for(outsider_token).get(path.format(incident=incident.pk, flag=incident.flag.key))

    assert response.status_code == 403
