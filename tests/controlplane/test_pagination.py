"""`?limit=` and `?offset=` on every API list: bounded, and a clear 400 naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import reverse

from evals.services import eval_sets, runs
from flags import services
from rollouts.services import experiments, lifecycle
from telemetry.services import webhooks
from tests.factories import FACTORY_ACTOR, client_for, make_environment, make_flag, make_version
from tests.routes import api_routes

pytestmark = pytest.mark.django_db

LIST_ROUTES = [route for route in api_routes() if route.is_paginated_list()]
BAD_VALUES = [
    ("limit", str(2**63)),
    ("limit", str(2**64 + 5)),
    ("limit", "100000000"),
    ("limit", "1001"),
    ("limit", "0"),
    ("limit", "-1"),
    ("limit", "1e3"),
    ("limit", "ten"),
    ("limit", ""),
    ("offset", str(2**63)),
    ("offset", "-1"),
    ("offset", "1.5"),
]


@pytest.fixture
def list_urls() -> dict[str, str]:
    flag = make_flag(key="support-chat")
    webhook = webhooks.create_webhook(
        name="ops", url="https://hooks.example.com/flagstaff", events=["incident.opened"], actor=FACTORY_ACTOR
    )
    # Routes name their objects by the same kwargs: an eval set keyed like the flag has version 1.
    eval_set = eval_sets.create_eval_set(key=flag.key, flag=flag, actor=FACTORY_ACTOR)
    version = eval_sets.create_eval_set_version(
        eval_set=eval_set,
        cases=[{"input": {"messages": [{"role": "user", "content": "Hi"}]}}],
        actor=FACTORY_ACTOR,
    )
    run = runs.start_run(
        flag=flag, eval_set_version=version, config_version=make_version(flag=flag), actor=FACTORY_ACTOR
    )
    environment = make_environment()
    services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)
    candidate = make_version(flag=flag, content={"model": "claude-haiku-4-5", "max_tokens": 512})
    rollout = lifecycle.create_rollout(
        flag=flag, environment=environment, candidate=candidate.number, actor=FACTORY_ACTOR
    )
    staging = make_environment(key="staging")
    services.publish_version(flag=flag, environment=staging, number=1, actor=FACTORY_ACTOR)
    experiment = experiments.create_experiment(
        flag=flag,
        environment=staging,
        baseline_weight=5000,
        candidates=[{"version": candidate.number, "weight": 5000}],
        window_seconds=3600,
        actor=FACTORY_ACTOR,
    )
    kwargs: dict[str, Any] = {"key": flag.key, "pk": webhook.pk, "number": version.number}
    # `pk` names a webhook on the webhook routes, a run on the eval-run routes, a rollout on the
    # rollout routes and an experiment on the experiment routes.
    by_prefix = {
        "api:eval-run": {**kwargs, "pk": run.pk},
        "api:rollout": {**kwargs, "pk": rollout.pk},
        "api:experiment": {**kwargs, "pk": experiment.pk},
    }

    def kwargs_of(route_name: str) -> dict[str, Any]:
        return next((found for prefix, found in by_prefix.items() if route_name.startswith(prefix)), kwargs)

    return {
        route.name: reverse(
            route.name, kwargs={name: kwargs_of(route.name)[name] for name in route.kwarg_names}
        )
        for route in LIST_ROUTES
    }


def test_list_routes__walked__cover_the_audit_log_and_flags() -> None:
    assert {"api:audit", "api:flags", "api:incidents", "api:webhook-deliveries", "api:experiments"} <= {
        r.name for r in LIST_ROUTES
    }


@pytest.mark.parametrize(("parameter", "value"), BAD_VALUES)
def test_list__limit_or_offset_out_of_range__400_naming_the_parameter(
    admin: User, list_urls: dict[str, str], parameter: str, value: str
) -> None:
    client = client_for(admin)
    answers = {name: client.get(url, {parameter: value}) for name, url in list_urls.items()}

    wrong = {
        name: (response.status_code, response.json())
        for name, response in answers.items()
        if response.status_code != 400
        or response.json()["code"] != "invalid_pagination"
        or response.json()["errors"][0]["path"] != parameter
    }
    assert wrong == {}


def test_list__limit_at_the_cap__200_with_that_page_size(admin: User, list_urls: dict[str, str]) -> None:
    client = client_for(admin)

    statuses = {
        name: client.get(url, {"limit": "1000", "offset": "0"}).status_code for name, url in list_urls.items()
    }

    assert set(statuses.values()) == {200}


def test_list__limit_above_a_lowered_cap__400(admin: User) -> None:
    make_flag()
    with override_settings(FLAGSTAFF_API_MAX_LIMIT=5):
        response = client_for(admin).get(reverse("api:flags"), {"limit": "6"})

    assert response.status_code == 400
    assert "from 1 to 5" in response.json()["errors"][0]["message"]


def test_list__no_limit_with_a_cap_below_the_page_size__cap_applies(admin: User) -> None:
    for _ in range(3):
        make_flag()
    with override_settings(FLAGSTAFF_API_MAX_LIMIT=2):
        response = client_for(admin).get(reverse("api:flags"))

    assert len(response.json()["results"]) == 2


def test_list__limit_and_offset__page_returned(admin: User) -> None:
    for key in ("a-flag", "b-flag", "c-flag"):
        make_flag(key=key)

    response = client_for(admin).get(reverse("api:flags"), {"limit": "1", "offset": "1"})

    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert len(response.json()["results"]) == 1


def test_schema__limit_parameter__documents_its_bounds(admin: User) -> None:
    schema = (
        client_for(admin).get(reverse("api:schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    )

    parameters = schema["paths"]["/api/v1/flags/"]["get"]["parameters"]
    limit = next(p for p in parameters if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
