"""The authorisation matrix over every API route: HEAD and OPTIONS are never a way around GET's
scope, and every write method refuses a caller without the scope the view declares for it.

Routes are read from the URL resolver, so a route added later is in the matrix without an edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections
from django.urls import reverse
from django.utils import timezone
from rest_framework.views import APIView

from controlplane.auth import HasScope, declared_scope
from controlplane.models import ROLE_SCOPES, Role, Scope
from controlplane.services import IssuedToken
from flags import services
from rollouts.services import experiments, lifecycle
from telemetry.models import Incident, IncidentKind
from telemetry.services import webhooks
from tests.factories import (
    FACTORY_ACTOR,
    client_for,
    make_environment,
    make_flag,
    make_token,
    make_user,
    make_version,
)
from tests.routes import Route, api_routes

pytestmark = pytest.mark.django_db

WRITE_METHODS = ("post", "put", "patch", "delete")


def scope_checked(view: type[APIView]) -> bool:
    return any(isinstance(permission, HasScope) for permission in view().get_permissions())


@dataclass(frozen=True)
class Caller:
    label: str
    principal: Any
    scopes: frozenset[str]


def callers(environment: Any) -> list[Caller]:
    people = [
        Caller(f"user:{role}", make_user(role=role, username=f"{role}@example.com"), ROLE_SCOPES[role])
        for role in Role.values
    ]
    tokens = [
        Caller(f"token:{scope}", make_token(scopes=[scope], name=f"only-{scope}"), frozenset({scope}))
        for scope in Scope.values
    ]
    bound = make_token(scopes=[Scope.READ], environment=environment, name="bound-read")
    return [
        Caller("anonymous", None, frozenset()),
        *people,
        *tokens,
        Caller("token:read@env", bound, frozenset({Scope.READ})),
    ]


@pytest.fixture
def world() -> dict[str, Any]:
    """One of every object a route's URL can name, so permitted callers reach real rows."""
    environment = make_environment(key="production")
    flag = make_flag(key="support-chat")
    version = make_version(flag=flag)
    services.publish_version(flag=flag, environment=environment, number=version.number, actor=FACTORY_ACTOR)
    services.add_rule(
        flag=flag,
        environment=environment,
        constraints=[],
        segments=[],
        version=1,
        description="",
        everyone=True,
        actor=FACTORY_ACTOR,
    )
    services.create_segment(key="beta", name="Beta", constraints=[], actor=FACTORY_ACTOR)
    incident = Incident.objects.create(
        kind=IncidentKind.LATENCY_BUDGET,
        flag=flag,
        environment=environment,
        summary="over budget",
        evidence={"checks": []},
        opened_at=timezone.now(),
    )
    webhook = webhooks.create_webhook(
        name="ops", url="https://hooks.example.com/flagstaff", events=["incident.opened"], actor=FACTORY_ACTOR
    )
    user = make_user(username="someone@example.com")
    candidate = make_version(flag=flag, content={"model": "claude-haiku-4-5", "max_tokens": 512})
    rollout = lifecycle.create_rollout(
        flag=flag, environment=environment, candidate=candidate.number, actor=FACTORY_ACTOR
    )
    rollout_routes = [route.name for route in api_routes() if route.name.startswith("api:rollout-")]
    # An experiment on another environment: the flag × environment holds one rollout or experiment.
    experiment_environment = make_environment(key="staging")
    services.publish_version(flag=flag, environment=experiment_environment, number=1, actor=FACTORY_ACTOR)
    experiment = experiments.create_experiment(
        flag=flag,
        environment=experiment_environment,
        baseline_weight=5000,
        candidates=[{"version": candidate.number, "weight": 5000}],
        window_seconds=3600,
        actor=FACTORY_ACTOR,
    )
    experiment_routes = [route.name for route in api_routes() if route.name.startswith("api:experiment-")]
    return {
        "environment": environment,
        # A gate verdict id that names none: a caller without the scope is refused before any lookup.
        "kwargs": {
            "key": flag.key,
            "env": environment.key,
            "number": version.number,
            "index": 0,
            "verdict_id": 1,
            "item": "tools_deliberate",
        },
        "pk": {
            "api:incident": incident.pk,
            "api:incident-resolve": incident.pk,
            "api:rollout": rollout.pk,
            "api:user": user.pk,
            **dict.fromkeys(rollout_routes, rollout.pk),
            "api:experiment": experiment.pk,
            **dict.fromkeys(experiment_routes, experiment.pk),
        },
        "webhook_pk": webhook.pk,
    }


def url_for(route: Route, world: dict[str, Any]) -> str:
    kwargs = {name: world["kwargs"][name] for name in route.kwarg_names if name != "pk"}
    if "pk" in route.kwarg_names:
        kwargs["pk"] = world["pk"].get(route.name, world["webhook_pk"])
    return reverse(route.name, kwargs=kwargs)


def _status(client: Any, method: str, url: str) -> int:
    response = getattr(client, method)(url)
    if response.streaming:
        # A change stream holds one of the process's stream places until its body is closed; a
        # server closes it after the last write, and so does this, as Django's test client
        # does, without closing the test's database connection.
        request_finished.disconnect(close_old_connections)
        response.close()
        request_finished.connect(close_old_connections)
    return int(response.status_code)


def test_api_routes__walked__include_the_audit_webhook_and_user_routes() -> None:
    names = {route.name for route in api_routes()}

    assert {
        "api:audit",
        "api:audit-export",
        "api:audit-verify",
        "api:webhooks",
        "api:webhook-deliveries",
        "api:users",
        "api:user",
        "api:experiments",
        "api:experiment-conclude",
        "api:experiment-start-canary",
    } <= names


def test_head_and_options__every_route_and_caller__never_pass_where_get_is_refused(
    world: dict[str, Any],
) -> None:
    mismatches = []
    for caller in callers(world["environment"]):
        client = client_for(caller.principal)
        for route in api_routes():
            if "get" not in route.allowed_methods():
                continue
            url = url_for(route, world)
            get = _status(client, "get", url)
            head = _status(client, "head", url)
            options = _status(client, "options", url)
            if head // 100 != get // 100 or (get >= 400 and head != get):
                mismatches.append(f"{caller.label} HEAD {url}: {head}, GET {get}")
            if get in {401, 403} and options < 400:
                mismatches.append(f"{caller.label} OPTIONS {url}: {options}, GET {get}")

    assert mismatches == []


def test_write_methods__every_route_and_caller_without_the_declared_scope__refused(
    world: dict[str, Any],
) -> None:
    let_through = []
    for caller in callers(world["environment"]):
        client = client_for(caller.principal)
        for route in api_routes():
            if not scope_checked(route.view):
                continue
            for method in route.allowed_methods():
                needed = declared_scope(route.view(), method.upper())
                if method not in WRITE_METHODS or needed in caller.scopes:
                    continue
                status = _status(client, method, url_for(route, world))
                if status not in {401, 403}:
                    let_through.append(
                        f"{caller.label} {method.upper()} {route.name}: {status} (needs {needed})"
                    )

    assert let_through == []


def test_declared_scope__every_method_a_route_allows__declared() -> None:
    undeclared = [
        f"{method.upper()} {route.name}"
        for route in api_routes()
        if scope_checked(route.view)
        for method in route.allowed_methods()
        if declared_scope(route.view(), method.upper()) is None
    ]

    assert undeclared == []


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_declared_scope__head_and_options__take_gets_scope(method: str) -> None:
    class AuditLike(APIView):
        required_scopes = {"GET": Scope.AUDIT}

    assert declared_scope(AuditLike(), method) == Scope.AUDIT


@pytest.mark.parametrize("method", ["POST", "TRACE", "PROPFIND"])
def test_declared_scope__method_missing_from_the_views_table__refused(method: str) -> None:
    class AuditLike(APIView):
        required_scopes = {"GET": Scope.AUDIT}

    assert declared_scope(AuditLike(), method) is None


def test_audit_list__head_with_read_token__403_like_get() -> None:
    token: IssuedToken = make_token(scopes=[Scope.READ])

    response = client_for(token).head(reverse("api:audit"))

    assert response.status_code == 403
